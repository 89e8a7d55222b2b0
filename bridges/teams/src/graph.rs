//! Microsoft Graph payloads to canonical events.
//!
//! The connector sees Teams messages as Graph `chatMessage` resources: in GET
//! and list responses, in delta pages ([`parse_delta_page`]) and in the
//! (decrypted) resource data of change notifications ([`parse_notifications`]).
//! [`parse_message`] turns one chatMessage into canonical [`Inbound`] events;
//! [`diff`] compares two versions of the same message (the connector keeps
//! the last one it saw) to find edits, deletions and reaction changes, which
//! Graph only reports as "this message changed".
//!
//! Graph documentation:
//! - chatMessage: <https://learn.microsoft.com/en-us/graph/api/resources/chatmessage>
//! - mentions: <https://learn.microsoft.com/en-us/graph/api/resources/chatmessagemention>
//! - reactions: <https://learn.microsoft.com/en-us/graph/api/resources/chatmessagereaction>
//! - attachments: <https://learn.microsoft.com/en-us/graph/api/resources/chatmessageattachment>
//! - system messages: <https://learn.microsoft.com/en-us/graph/system-messages>,
//!   <https://learn.microsoft.com/en-us/graph/api/resources/eventmessagedetail>
//! - change notifications: <https://learn.microsoft.com/en-us/graph/teams-changenotifications-chatmessage>,
//!   <https://learn.microsoft.com/en-us/graph/change-notifications-delivery-webhooks>,
//!   lifecycle: <https://learn.microsoft.com/en-us/graph/change-notifications-lifecycle-events>
//! - delta: <https://learn.microsoft.com/en-us/graph/api/chatmessage-delta>
//!
//! # Ids (a compatibility contract: they are stored)
//!
//! | id | value |
//! |---|---|
//! | [`Origin`] channel | channel messages: `"{teamId}/{channelId}"` (`channelIdentity`; the team is the group GUID); chats: the `chatId` (`19:…@unq.gbl.spaces`, `19:…@thread.v2`) |
//! | [`MessageId`] | Graph message ids are millisecond-epoch strings, "unique only under a specific scope i.e. chat or a channel" (protocols/teams.md §6), so `(channel, id)` is unique. Roots and chat messages: `"{id}"`. Channel replies: `"{replyToId}/{id}"`, because Graph addresses a reply only under its root (`…/messages/{root}/replies/{id}`); see [`message_id`] and [`split_message_id`] |
//! | `thread_root` | a channel reply's `replyToId` (chats have no threads; `replyToId` "only applies to chat messages in channels") |
//! | `reply_to` | a chat quote: the `messageReference` attachment's `messageId` |
//! | [`UserId`] | the AAD user id (`from.user.id`); apps by `from.application.id`; system messages without an initiator as [`SYSTEM_USER`] |
//! | [`CallId`](switchboard_model::CallId) | `"teams-call:{eventDetail.callId}"` |
//! | [`EventId`] | `"{channel}\|{message id}\|{version}\|{kind}"`, version = `etag`, else `lastModifiedDateTime`; reactions append `"\|{+ or -}{key}\|{user}"`; the n-th (n ≥ 1) of several events from one payload appends `"#{n}"`. Notification retries and delta re-reads of the same version get the same id. A `call` command: `"{channel}\|{message id}\|call_request"`, whatever the version |
//! | [`Timestamp`] | `createdDateTime` (new), `lastEditedDateTime` (edit), `deletedDateTime` (delete), the reaction's `createdDateTime` (reactions), else `lastModifiedDateTime`; unparseable times fall back to the message id (epoch ms) |
//!
//! # What maps to what
//!
//! - `deletedDateTime` set → [`InboundKind::Delete`];
//! - else `lastEditedDateTime` set → [`InboundKind::Edit`];
//! - else → [`InboundKind::Message`] (`messageType` `message`). HTML bodies go
//!   through [`crate::html::parse`] with `mentions[]`; `reference`
//!   attachments and inline `hostedContents` images become attachments; other
//!   attachments (cards, meeting and tab references) a visible `[…]` line.
//! - `systemEventMessage`: call started/ended → [`InboundKind::Call`]
//!   ([`CallProvider::TeamsMeeting`](switchboard_model::CallProvider::TeamsMeeting)); members added/joined/deleted/left →
//!   [`InboundKind::Member`] (one per member); chat or channel renamed,
//!   channel description updated → [`InboundKind::ChannelInfo`]; others
//!   (recordings, transcripts, policy updates, tabs…) are ignored by name.
//! - A new message that mentions [`ParseContext::call_to`] (the service
//!   account) and then says `call [title]` → [`InboundKind::CallRequest`]
//!   instead of a message ([`call_command`]); its edits are not commands.
//! - Reactions are only visible by comparing versions: [`diff`].
//!
//! # Recognising our own posts
//!
//! A sender is ours ([`Sender::is_ours`]) when `from.user.id` or
//! `from.application.id` is in [`ParseContext::our_users`] (the service
//! account, our app), or when the body contains the element
//! [`relay_marker_html`] writes for [`ParseContext::relay_marker`]: an empty
//! `<span itemid="switchboard-relay:{op}">` that posts through linked users'
//! own accounts carry. Only the attribute counts, so a person who merely types
//! the marker (which Teams escapes) is not mistaken for us.
//! Whether Teams keeps that attribute on every client and edit is not
//! documented (protocols/teams.md does not cover HTML sanitising), so the
//! connector must also remember the ids Graph returned for its own posts;
//! the marker is the first guard, the id record the authoritative one.

pub mod crypto;
mod known;
mod notify;
mod system;
mod time;

#[cfg(test)]
mod corpus_tests;
#[cfg(test)]
mod tests;

use crate::html::{self, Mention};
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use switchboard_model::{
    Attachment, Block, BridgeId, ChannelId, EventId, Inbound, InboundKind, Inline, Message,
    MessageId, Origin, Person, RichText, Sender, Timestamp, UserId,
};

pub use notify::{
    ChangeType, DeltaPage, EncryptedContent, LifecycleEvent, Notification, NotificationBatch,
    ResourceRef, client_state_matches, delta_page_of, parse_delta_page, parse_notification_batch,
    parse_notifications, parse_resource, validation_token,
};

pub use known::{Known, VERSION_FIELDS, version_of};
pub(crate) use time::parse_datetime;

/// The relay marker used unless configured otherwise.
pub const DEFAULT_RELAY_MARKER: &str = "switchboard-relay";

/// The user id given to system messages that name no initiator.
pub const SYSTEM_USER: &str = "teams:system";

/// A JSON object.
type Obj = Map<String, Value>;

/// What the parser needs to know about the installation it parses for.
#[derive(Debug, Clone, Copy)]
pub struct ParseContext<'a> {
    /// The bridge whose messages these are.
    pub bridge: &'a BridgeId,
    /// Our tenant. When set, [`Notification::is_for_tenant`] filters
    /// notifications for other tenants; messages are not filtered (federated
    /// and guest users post from other tenants).
    pub tenant: Option<&'a str>,
    /// AAD user ids and app ids of our own accounts (the service account,
    /// our app). Their posts are ours.
    pub our_users: &'a [String],
    /// The marker we put into every body we post as
    /// [`relay_marker_html`]; a body containing that element is ours whoever
    /// posted it. Empty disables the check.
    pub relay_marker: &'a str,
    /// The account (AAD user id) a `call` command is addressed to: a new
    /// message that mentions it and whose remaining text starts with the
    /// word `call` becomes [`InboundKind::CallRequest`] instead of a
    /// message ([`call_command`]). `None` recognises no commands.
    pub call_to: Option<&'a str>,
}

impl<'a> ParseContext<'a> {
    /// A context that knows no accounts of ours and uses [`DEFAULT_RELAY_MARKER`].
    pub fn new(bridge: &'a BridgeId) -> Self {
        ParseContext {
            bridge,
            tenant: None,
            our_users: &[],
            relay_marker: DEFAULT_RELAY_MARKER,
            call_to: None,
        }
    }
}

/// The invisible element the connector appends to bodies it posts:
/// `<span itemid="{marker}:{op}"></span>`. It has no text, so
/// [`crate::html::parse`] drops it.
pub fn relay_marker_html(marker: &str, op: &str) -> String {
    format!(
        "<span itemid=\"{}\"></span>",
        escape_attr(&format!("{marker}:{op}"))
    )
}

/// The op markers our relay marker `marker` carries in `content` (a
/// message's HTML, as Graph returns it): `{marker}:{op}` in an `itemid`.
pub fn relay_markers_in(content: &str, marker: &str) -> Vec<String> {
    let needle = format!("itemid=\"{}:", escape_attr(marker));
    let mut out = Vec::new();
    let mut rest = content;
    while let Some(at) = rest.find(&needle) {
        rest = &rest[at + needle.len()..];
        let Some(end) = rest.find('"') else { break };
        out.push(
            rest[..end]
                .replace("&quot;", "\"")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&amp;", "&"),
        );
        rest = &rest[end..];
    }
    out
}

fn escape_attr(text: &str) -> String {
    let mut attr = String::new();
    for c in text.chars() {
        match c {
            '&' => attr.push_str("&amp;"),
            '"' => attr.push_str("&quot;"),
            '<' => attr.push_str("&lt;"),
            '>' => attr.push_str("&gt;"),
            c => attr.push(c),
        }
    }
    attr
}

/// When a listed message last changed: `lastModifiedDateTime`, else
/// `createdDateTime`, else its id (a channel message's id is its creation
/// time in ms).
pub fn last_changed(message: &Value) -> Option<Timestamp> {
    ["lastModifiedDateTime", "createdDateTime"]
        .iter()
        .find_map(|k| {
            message
                .get(*k)
                .and_then(Value::as_str)
                .and_then(time::parse_datetime)
        })
        .or_else(|| {
            message
                .get("id")
                .and_then(Value::as_str)
                .and_then(|id| id.parse().ok())
        })
        .map(Timestamp)
}

/// What a payload means for the daemon.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    /// Canonical events, in order (usually one).
    Events(Vec<Inbound>),
    /// Understood and deliberately not relayed.
    Ignored(IgnoreReason),
}

impl Parsed {
    /// The events, or none when ignored.
    pub fn into_events(self) -> Vec<Inbound> {
        match self {
            Parsed::Events(list) => list,
            Parsed::Ignored(_) => Vec::new(),
        }
    }
}

/// Why a well-formed chatMessage is not relayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IgnoreReason {
    /// A `messageType` other than `message` and `systemEventMessage`
    /// (`chatEvent`, `typing`, `unknownFutureValue`…).
    UnsupportedMessageType(String),
    /// A system event that is not relayed (its `eventDetail` type, without
    /// the `#microsoft.graph.` prefix; `unknown` when absent).
    SystemEvent(String),
    /// A message with no text and no attachments.
    EmptyMessage,
    /// A new version of a message that changes nothing relayed (etag bump,
    /// policy change, a reply count…).
    Unchanged,
}

impl IgnoreReason {
    /// A short, bounded name for logs and metric labels.
    pub fn label(&self) -> &'static str {
        match self {
            IgnoreReason::UnsupportedMessageType(_) => "unsupported_message_type",
            IgnoreReason::SystemEvent(_) => "system_event",
            IgnoreReason::EmptyMessage => "empty_message",
            IgnoreReason::Unchanged => "unchanged",
        }
    }
}

impl std::fmt::Display for IgnoreReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IgnoreReason::UnsupportedMessageType(t) => {
                write!(f, "messageType {t:?} is not relayed")
            }
            IgnoreReason::SystemEvent(t) => write!(f, "system event {t:?} is not relayed"),
            IgnoreReason::EmptyMessage => f.write_str("message without text or attachments"),
            IgnoreReason::Unchanged => f.write_str("new version without a relayed change"),
        }
    }
}

/// Why a payload could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// Not JSON at all (the parser's message names a position, never content).
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    /// JSON, but not an object.
    #[error("payload is not a JSON object")]
    NotAnObject,
    /// A required field is absent, null or empty.
    #[error("missing field {0:?}")]
    MissingField(&'static str),
    /// A required field has the wrong JSON type.
    #[error("field {field:?} is not {expected}")]
    WrongType {
        /// The field.
        field: &'static str,
        /// What it should have been.
        expected: &'static str,
    },
    /// A chatMessage with neither `channelIdentity` nor `chatId`.
    #[error("chatMessage names neither a channel nor a chat")]
    NoConversation,
}

impl Rejected {
    /// A short, bounded name for logs and metric labels.
    pub fn label(&self) -> &'static str {
        match self {
            Rejected::InvalidJson(_) => "invalid_json",
            Rejected::NotAnObject => "not_an_object",
            Rejected::MissingField(_) => "missing_field",
            Rejected::WrongType { .. } => "wrong_type",
            Rejected::NoConversation => "no_conversation",
        }
    }
}

/// The [`MessageId`] of a Graph message: `"{replyToId}/{id}"` for a channel
/// reply, else `"{id}"`.
pub fn message_id(channel_message: bool, reply_to: Option<&str>, id: &str) -> MessageId {
    match reply_to.filter(|r| channel_message && !r.is_empty() && *r != id) {
        Some(root) => MessageId::new(format!("{root}/{id}")),
        None => MessageId::new(id),
    }
}

/// The inverse of [`message_id`]: `(root, id)`, root set for channel replies.
pub fn split_message_id(id: &MessageId) -> (Option<&str>, &str) {
    match id.as_str().split_once('/') {
        Some((root, id)) => (Some(root), id),
        None => (None, id.as_str()),
    }
}

// ---------------------------------------------------------------- JSON helpers

/// A present, non-null, non-empty string field.
fn req_str<'a>(obj: &'a Obj, key: &'static str) -> Result<&'a str, Rejected> {
    match obj.get(key) {
        None | Some(Value::Null) => Err(Rejected::MissingField(key)),
        Some(Value::String(s)) if s.is_empty() => Err(Rejected::MissingField(key)),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(Rejected::WrongType {
            field: key,
            expected: "a string",
        }),
    }
}

/// An optional non-empty string (absent, null, empty and other types read as None).
fn opt_str<'a>(obj: &'a Obj, key: &str) -> Option<&'a str> {
    obj.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn opt_obj<'a>(obj: &'a Obj, key: &str) -> Option<&'a Obj> {
    obj.get(key).and_then(Value::as_object)
}

fn opt_array<'a>(obj: &'a Obj, key: &str) -> &'a [Value] {
    obj.get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// A `{user|application|device: {id, displayName}}` identity set as a person.
fn identity_person(set: &Obj, bridge: &BridgeId) -> Option<Person> {
    if let Some(user) = opt_obj(set, "user")
        && let Some(id) = opt_str(user, "id")
    {
        let name = opt_str(user, "displayName").map_or(id, str::trim);
        return Some(Person::new(bridge.clone(), UserId::new(id), name));
    }
    if let Some(app) = opt_obj(set, "application")
        && let Some(id) = opt_str(app, "id")
    {
        let name = opt_str(app, "displayName").map_or(id, str::trim);
        return Some(Person::new(bridge.clone(), UserId::new(id), name).bot());
    }
    // A bare identity ({id, displayName, userIdentityType}), as in members[].
    let id = opt_str(set, "id")?;
    let name = opt_str(set, "displayName").map_or(id, str::trim);
    Some(Person::new(bridge.clone(), UserId::new(id), name))
}

fn system_person(bridge: &BridgeId) -> Person {
    Person::new(bridge.clone(), UserId::new(SYSTEM_USER), "Microsoft Teams").bot()
}

// ---------------------------------------------------------------- messages

/// What every event from one chatMessage shares.
struct Header<'a> {
    obj: &'a Obj,
    origin: Origin,
    id: MessageId,
    graph_id: &'a str,
    thread_root: Option<MessageId>,
    version: String,
    sender: Sender,
}

impl Header<'_> {
    fn event_id(&self, kind: &str) -> EventId {
        EventId::new(format!(
            "{}|{}|{}|{}",
            self.origin.channel, self.id, self.version, kind
        ))
    }

    /// The time in `key`, else `lastModifiedDateTime`, else the id.
    fn time(&self, key: &str) -> Timestamp {
        let parsed = opt_str(self.obj, key)
            .and_then(time::parse_datetime)
            .or_else(|| opt_str(self.obj, "lastModifiedDateTime").and_then(time::parse_datetime))
            .or_else(|| self.graph_id.parse().ok());
        Timestamp(parsed.unwrap_or(0))
    }

    fn inbound(&self, kind_label: &str, at: Timestamp, kind: InboundKind) -> Inbound {
        Inbound::new(
            self.origin.clone(),
            self.event_id(kind_label),
            self.sender.clone(),
            kind,
        )
        .at(at)
    }
}

/// The conversation of a message: `channelIdentity`, else `chatId`, else its
/// own `@odata.context` (POST responses carry only that), else `fallback`.
/// Returns the canonical channel id and whether it is a team channel.
fn conversation(obj: &Obj, fallback: Option<&ResourceRef>) -> Option<(String, bool)> {
    if let Some(c) = opt_obj(obj, "channelIdentity")
        && let (Some(team), Some(channel)) = (opt_str(c, "teamId"), opt_str(c, "channelId"))
    {
        return Some((format!("{team}/{channel}"), true));
    }
    if let Some(chat) = opt_str(obj, "chatId") {
        return Some((chat.to_owned(), false));
    }
    let own = opt_str(obj, "@odata.context").and_then(context_resource);
    [own.as_ref(), fallback]
        .into_iter()
        .flatten()
        .find_map(|r| {
            let channel = r.channel_id()?;
            Some((channel.to_string(), r.chat.is_none()))
        })
}

/// The resource an `@odata.context` URL names (`…/$metadata#teams('…')/channels('…')/messages`).
pub fn context_resource(context: &str) -> Option<ResourceRef> {
    parse_resource(context.split_once('#')?.1)
}

fn header<'a>(
    value: &'a Value,
    fallback: Option<&ResourceRef>,
    ctx: &ParseContext<'_>,
) -> Result<Header<'a>, Rejected> {
    let obj = value.as_object().ok_or(Rejected::NotAnObject)?;
    let graph_id = req_str(obj, "id")?;
    let (channel, channel_message) = conversation(obj, fallback).ok_or(Rejected::NoConversation)?;
    let reply_to = opt_str(obj, "replyToId");
    let id = message_id(channel_message, reply_to, graph_id);
    let thread_root = reply_to
        .filter(|r| channel_message && *r != graph_id)
        .map(MessageId::new);
    let version = opt_str(obj, "etag")
        .or_else(|| opt_str(obj, "lastModifiedDateTime"))
        .unwrap_or("0")
        .to_owned();
    let person = opt_obj(obj, "from")
        .and_then(|f| identity_person(f, ctx.bridge))
        .or_else(|| {
            opt_obj(obj, "eventDetail")
                .and_then(|d| opt_obj(d, "initiator"))
                .and_then(|i| identity_person(i, ctx.bridge))
        })
        .unwrap_or_else(|| system_person(ctx.bridge));
    let ours_by_id = ctx.our_users.iter().any(|u| u == person.user.as_str());
    let ours_by_marker = !ctx.relay_marker.is_empty()
        && opt_obj(obj, "body")
            .and_then(|b| opt_str(b, "content"))
            .is_some_and(|c| c.contains(&format!("itemid=\"{}:", ctx.relay_marker)));
    let sender = if ours_by_id || ours_by_marker {
        Sender::ours(person)
    } else {
        Sender::new(person)
    };
    Ok(Header {
        obj,
        origin: Origin::new(ctx.bridge.clone(), ChannelId::new(channel)),
        id,
        graph_id,
        thread_root,
        version,
        sender,
    })
}

/// Parses one chatMessage (from a GET, a list or delta page, or a
/// notification's decrypted resource data) into canonical events. See the
/// module docs for the mapping and id conventions.
pub fn parse_message(value: &Value, ctx: &ParseContext<'_>) -> Result<Parsed, Rejected> {
    parse_message_in(value, None, ctx)
}

/// [`parse_message`] for a message that may not name its conversation (list
/// and delta items, POST responses): `conversation` is the chat or channel
/// the caller read it from (e.g. [`DeltaPage::conversation`] or
/// [`parse_resource`] of the request path).
pub fn parse_message_in(
    value: &Value,
    conversation: Option<&ResourceRef>,
    ctx: &ParseContext<'_>,
) -> Result<Parsed, Rejected> {
    let h = header(value, conversation, ctx)?;
    if opt_str(h.obj, "deletedDateTime").is_some() {
        let kind = InboundKind::Delete {
            target: h.id.clone(),
        };
        return Ok(Parsed::Events(vec![h.inbound(
            "delete",
            h.time("deletedDateTime"),
            kind,
        )]));
    }
    let edited = opt_str(h.obj, "lastEditedDateTime").is_some();
    parse_content(&h, ctx, if edited { Mode::Edit } else { Mode::New })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    New,
    Edit,
}

fn parse_content(h: &Header<'_>, ctx: &ParseContext<'_>, mode: Mode) -> Result<Parsed, Rejected> {
    let message_type = opt_str(h.obj, "messageType").unwrap_or("message");
    match message_type {
        "message" => {}
        "systemEventMessage" => return Ok(with_suffixes(system::parse(h, ctx))),
        other => {
            return Ok(Parsed::Ignored(IgnoreReason::UnsupportedMessageType(
                other.to_owned(),
            )));
        }
    }
    let message = message_content(h, ctx);
    if message.body.is_empty() && message.attachments.is_empty() {
        return Ok(Parsed::Ignored(IgnoreReason::EmptyMessage));
    }
    if mode == Mode::New
        && !h.sender.is_ours
        && let Some(account) = ctx.call_to
        && let Some(title) = call_command(&message.body, account)
    {
        // One id per message, whatever its version: a notification and a
        // reconciliation of the same message ask once.
        let event = EventId::new(format!("{}|{}|call_request", h.origin.channel, h.id));
        let request = Inbound::new(
            h.origin.clone(),
            event,
            h.sender.clone(),
            InboundKind::CallRequest { title },
        )
        .at(h.time("createdDateTime"));
        return Ok(Parsed::Events(vec![request]));
    }
    let (label, at, kind) = match mode {
        Mode::New => (
            "message",
            h.time("createdDateTime"),
            InboundKind::Message {
                id: h.id.clone(),
                message,
            },
        ),
        Mode::Edit => (
            "edit",
            h.time("lastEditedDateTime"),
            InboundKind::Edit {
                target: h.id.clone(),
                message,
            },
        ),
    };
    Ok(Parsed::Events(vec![h.inbound(label, at, kind)]))
}

/// Whether `body` is a `call` command addressed to `account` (an AAD user
/// id): it mentions `account`, and without those mentions its text starts
/// with the word `call` (any case). `Some(title)` if so, the title being the
/// rest of that line (`None` when empty): `<at>Switchboard</at> call Design
/// review` → `Some(Some("Design review"))`. `recall`, `callback` or a `call`
/// that mentions someone else are not commands.
pub fn call_command(body: &RichText, account: &str) -> Option<Option<String>> {
    let mut body = body.clone();
    let mut addressed = false;
    body.for_each_inline_mut(&mut |inline| {
        if let Inline::UserMention { user, .. } = inline
            && user.as_str() == account
        {
            addressed = true;
            *inline = Inline::text(" ");
        }
    });
    if !addressed {
        return None;
    }
    let plain = body.to_plain();
    let rest = plain.trim_start();
    let word_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
    let (word, rest) = rest.split_at(word_end);
    if !word.eq_ignore_ascii_case("call") {
        return None;
    }
    let title = rest.lines().next().unwrap_or("").trim();
    Some((!title.is_empty()).then(|| title.to_owned()))
}

/// Gives the n-th (n ≥ 1) event of a payload the id suffix `#n`.
fn with_suffixes(parsed: Parsed) -> Parsed {
    match parsed {
        Parsed::Events(mut list) => {
            for (n, inbound) in list.iter_mut().enumerate().skip(1) {
                inbound.event = EventId::new(format!("{}#{n}", inbound.event));
            }
            Parsed::Events(list)
        }
        ignored => ignored,
    }
}

/// The body, attachments and quote of a `message`.
fn message_content(h: &Header<'_>, ctx: &ParseContext<'_>) -> Message {
    let body = opt_obj(h.obj, "body");
    let content = body.and_then(|b| opt_str(b, "content")).unwrap_or("");
    let is_html = body
        .and_then(|b| opt_str(b, "contentType"))
        .is_some_and(|t| t.eq_ignore_ascii_case("html"));
    let mentions: Vec<Mention> = opt_array(h.obj, "mentions")
        .iter()
        .filter_map(Mention::from_graph)
        .collect();
    let parsed = if is_html {
        html::parse(content, &mentions, ctx.bridge)
    } else {
        html::ParsedBody {
            body: html::parse_text(content),
            ..html::ParsedBody::default()
        }
    };
    let mut message = Message::new(parsed.body);
    message.thread_root = h.thread_root.clone();
    let mut notes: Vec<String> = Vec::new();
    let mut files: Vec<(String, String)> = Vec::new();
    for att in opt_array(h.obj, "attachments") {
        let Some(att) = att.as_object() else { continue };
        let content_type = opt_str(att, "contentType").unwrap_or("");
        let name = opt_str(att, "name");
        match content_type {
            "reference" => {
                // Files live in SharePoint or OneDrive, which the app has no
                // permission to read: a link in the text, not an attachment
                // that every other platform would fail to download.
                if let Some(url) = opt_str(att, "contentUrl") {
                    let name = name.map_or_else(|| file_name(url), str::to_owned);
                    files.push((name, url.to_owned()));
                }
            }
            "messageReference" => {
                let quoted = att
                    .get("content")
                    .and_then(Value::as_str)
                    .and_then(|s| serde_json::from_str::<Value>(s).ok())
                    .and_then(|v| {
                        v.get("messageId")
                            .and_then(Value::as_str)
                            .map(str::to_owned)
                    })
                    .or_else(|| opt_str(att, "id").map(str::to_owned));
                message.reply_to = quoted.map(MessageId::new);
            }
            other => {
                let kind = match other {
                    "meetingReference" => "meeting",
                    "tabReference" => "tab",
                    t if t.starts_with("application/vnd.microsoft.card") => "card",
                    t if t.starts_with("image/") => "image",
                    "" => "attachment",
                    t => t,
                };
                notes.push(match name {
                    Some(name) => format!("[{kind}: {name}]"),
                    None => format!("[{kind}]"),
                });
            }
        }
    }
    for (n, src) in parsed.images.iter().enumerate() {
        let id = src
            .split("hostedContents/")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .filter(|s| !s.is_empty())
            .unwrap_or(src);
        message.attachments.push(Attachment::new(
            id,
            format!("image-{}.png", n + 1),
            "image/png",
            src.clone(),
        ));
    }
    for (name, url) in files {
        let lower = url.to_ascii_lowercase();
        let content = if lower.starts_with("https://") || lower.starts_with("http://") {
            vec![
                Inline::text("📎 "),
                Inline::Link {
                    url,
                    content: vec![Inline::text(name)],
                },
            ]
        } else {
            vec![Inline::text(format!("📎 {name}"))]
        };
        message.body.blocks.push(Block::Paragraph { content });
    }
    if !notes.is_empty() {
        let mut blocks = message.body.blocks;
        blocks.extend(RichText::plain(notes.join("\n")).blocks);
        message.body = RichText { blocks };
    }
    message
}

fn file_name(url: &str) -> String {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    path.rsplit('/')
        .find(|s| !s.is_empty())
        .unwrap_or("file")
        .to_owned()
}

// ---------------------------------------------------------------- diff

/// Compares two versions of the same chatMessage (`previous` is the last
/// one the connector saw, `None` if none) and yields what changed:
/// a new [`InboundKind::Message`], an [`InboundKind::Edit`], an
/// [`InboundKind::Delete`] (or a re-post after an undelete), and one
/// [`InboundKind::Reaction`] per reaction added or removed.
pub fn diff(
    previous: Option<&Value>,
    current: &Value,
    ctx: &ParseContext<'_>,
) -> Result<Parsed, Rejected> {
    match previous {
        None => parse_message(current, ctx),
        Some(previous) => {
            previous.as_object().ok_or(Rejected::NotAnObject)?;
            diff_known(&Known::of(previous, ctx.relay_marker), current, ctx)
        }
    }
}

/// [`diff`] against what was kept of the previous version ([`Known`]).
pub fn diff_known(
    previous: &Known,
    current: &Value,
    ctx: &ParseContext<'_>,
) -> Result<Parsed, Rejected> {
    let h = header(current, None, ctx)?;
    let was_deleted = previous.deleted;
    let is_deleted = opt_str(h.obj, "deletedDateTime").is_some();
    match (was_deleted, is_deleted) {
        (false, true) => return parse_message(current, ctx),
        (true, true) => return Ok(Parsed::Ignored(IgnoreReason::Unchanged)),
        (true, false) => return parse_content(&h, ctx, Mode::New),
        (false, false) => {}
    }
    if opt_str(h.obj, "messageType") == Some("systemEventMessage") {
        return Ok(Parsed::Ignored(IgnoreReason::Unchanged));
    }
    let mut events = Vec::new();
    let edited = previous.edited_in(h.obj);
    if edited {
        match parse_content(&h, ctx, Mode::Edit)? {
            Parsed::Events(list) => events.extend(list),
            Parsed::Ignored(_) => {}
        }
    }
    let before = previous.reactions.to_vec();
    let after = reactions(h.obj);
    for (added, set, other) in [(true, &after, &before), (false, &before, &after)] {
        for r in set.iter().filter(|r| !other.contains(r)) {
            let (key, user, name, created) = r;
            let person = Person::new(ctx.bridge.clone(), UserId::new(user.clone()), name.clone());
            let ours = ctx.our_users.iter().any(|u| u == user);
            let sender = if ours {
                Sender::ours(person)
            } else {
                Sender::new(person)
            };
            let at = if added {
                created
                    .as_deref()
                    .and_then(time::parse_datetime)
                    .map_or_else(|| h.time("lastModifiedDateTime"), Timestamp)
            } else {
                h.time("lastModifiedDateTime")
            };
            let sign = if added { '+' } else { '-' };
            let event = EventId::new(format!(
                "{}|{}|{}|reaction|{sign}{key}|{user}",
                h.origin.channel, h.id, h.version
            ));
            events.push(
                Inbound::new(
                    h.origin.clone(),
                    event,
                    sender,
                    InboundKind::Reaction {
                        target: h.id.clone(),
                        key: key.clone(),
                        added,
                    },
                )
                .at(at),
            );
        }
    }
    if events.is_empty() {
        return Ok(Parsed::Ignored(IgnoreReason::Unchanged));
    }
    Ok(Parsed::Events(events))
}

/// `(key, user id, user name, createdDateTime)` of every reaction.
type Reaction = (String, String, String, Option<String>);

fn reactions(obj: &Obj) -> Vec<Reaction> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for r in opt_array(obj, "reactions") {
        let Some(r) = r.as_object() else { continue };
        let Some(kind) = opt_str(r, "reactionType") else {
            continue;
        };
        let key = reaction_key(kind, opt_str(r, "displayName"));
        let Some(user) = opt_obj(r, "user") else {
            continue;
        };
        let user = opt_obj(user, "user").unwrap_or(user);
        let Some(id) = opt_str(user, "id") else {
            continue;
        };
        if seen.insert((key.clone(), id.to_owned())) {
            let name = opt_str(user, "displayName").unwrap_or(id).to_owned();
            let created = opt_str(r, "createdDateTime").map(str::to_owned);
            out.push((key, id.to_owned(), name, created));
        }
    }
    out
}

/// A reaction key: Unicode as is, Teams' legacy names as their emoji,
/// custom reactions as `:displayName:` (or `:custom:`).
pub fn reaction_key(reaction_type: &str, display_name: Option<&str>) -> String {
    match reaction_type {
        "like" => "👍".to_owned(),
        "heart" => "❤️".to_owned(),
        "laugh" => "😆".to_owned(),
        "surprised" => "😮".to_owned(),
        "sad" => "😢".to_owned(),
        "angry" => "😠".to_owned(),
        "custom" => format!(":{}:", display_name.unwrap_or("custom")),
        other if other.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
            format!(":{other}:")
        }
        other => other.to_owned(),
    }
}
