//! Events API payloads to canonical events.
//!
//! Slack delivers events the same way over both transports: an HTTP Request
//! URL receives the payload as the request body, Socket Mode wraps the very
//! same bytes in an envelope's `payload` ([`parse_socket_frame`]). Either way
//! [`parse_payload`] turns them into a [`Payload`]: a `url_verification`
//! challenge, an `app_rate_limited` notice, canonical [`Inbound`] events, or
//! an explicit [`IgnoreReason`]. Input that cannot be understood is
//! [`Rejected`] with a named reason; nothing here panics on any input.
//!
//! Slack documentation:
//! - outer wrapper: <https://docs.slack.dev/reference/objects/event-object>
//! - event catalogue: <https://docs.slack.dev/reference/events>
//! - messages and subtypes: <https://docs.slack.dev/reference/events/message>,
//!   `message_changed`, `message_deleted`, `message_replied` below it
//! - threads: <https://docs.slack.dev/messaging/retrieving-messages#threads>
//!   (a reply has `thread_ts != ts`)
//! - `url_verification`: <https://docs.slack.dev/reference/events/url_verification>
//! - `app_rate_limited`: <https://docs.slack.dev/apis/events-api/#rate-limiting>
//! - Socket Mode: <https://docs.slack.dev/apis/events-api/using-socket-mode>
//! - huddles and calls: <https://docs.slack.dev/reference/objects/conversation-object>,
//!   <https://docs.slack.dev/reference/methods/calls.add>,
//!   <https://docs.slack.dev/reference/events/user_huddle_changed>
//!
//! # Ids (a compatibility contract: they are stored)
//!
//! | id | value |
//! |---|---|
//! | [`Origin`] | `(ctx.bridge, channel id)`: `C…`, `G…` or `D…` as Slack sends it |
//! | [`EventId`] | the wrapper's `event_id` (`Ev…`). Payloads without one (bare events: archived RTM-era docs, history catch-up) get `"{channel}:{event ts}:{type or subtype}"`, with `":{user}:{reaction}"` appended for reactions, `":{user}"` for `member_joined_channel`/`member_left_channel` and `":{new name}"` for renames; the event ts is `event_ts`, else `ts`, else `0` |
//! | several events from one payload | the first keeps the id above, the n-th (n ≥ 1) gets `"{id}#{n}"` (only a message with several call blocks does this) |
//! | [`MessageId`](switchboard_model::MessageId) | the message's `ts` (`"1355517523.000005"`), unique within its channel; edits, deletes and reactions name their target by the same ts (`message.ts`, `deleted_ts`, `item.ts`) |
//! | `thread_root` | `thread_ts` when it differs from `ts` (also for `thread_broadcast`) |
//! | [`UserId`](switchboard_model::UserId) | the `U…`/`W…` user id; a bot without a user id by its `B…` bot id; Slack's system user `USLACKBOT` for actions Slack reports without an actor; call participants outside Slack as `"external:{external_id}"` |
//! | [`CallId`](switchboard_model::CallId) | huddles `"slack-huddle:{room.id}"`, Calls API calls `"slack-call:{call id}"` (both `R…`) |
//! | [`Timestamp`] | `event_ts`, else `ts`, else the wrapper's `event_time`, in milliseconds |
//!
//! # What maps to what
//!
//! - `message` (no subtype), `bot_message`, `me_message` (emote), `file_share`,
//!   `thread_broadcast` → [`InboundKind::Message`]. The body comes from the
//!   `rich_text` blocks when present, else from the mrkdwn `text`; messages
//!   shared into this one (`attachments[]` with `is_share`) are appended as
//!   quotes; `files[]` become attachments.
//! - `message_changed` → [`InboundKind::Edit`], or [`InboundKind::Delete`]
//!   when the new message is a `tombstone` (a deleted thread parent), or a
//!   call update when it is a huddle or carries a call block. A change that
//!   leaves text, files and blocks alone (an unfurl, language metadata) is
//!   [`IgnoreReason::Unchanged`].
//! - `message_deleted` → [`InboundKind::Delete`] of `deleted_ts`.
//! - `huddle_thread` messages and `call` blocks → [`InboundKind::Call`]
//!   (new message: started; changed: updated, or ended with its duration).
//! - `reaction_added`/`reaction_removed` on messages → [`InboundKind::Reaction`].
//! - `member_joined_channel`/`member_left_channel` and the `channel_join`/
//!   `channel_leave` messages → [`InboundKind::Member`].
//! - `channel_rename`, `channel_topic`, `channel_purpose` → [`InboundKind::ChannelInfo`]
//!   (the model has one `topic`; Slack's purpose is reported as the topic too).
//! - `user_huddle_changed` is ignored ([`IgnoreReason::NoChannel`]): it names
//!   the user's huddle but no channel, and the channel's `huddle_thread`
//!   message already reports the same call with its participants.
//! - Everything else is ignored with a reason.
//! - Slash commands (`/switchboard call [title]` → [`InboundKind::CallRequest`],
//!   any other text → [`InboundKind::Command`]) are not events: see [`command`].
//!   Messages in an IM with the bot are parsed here like any message; the
//!   connector turns those outside portals into commands (its `direct` module).
//!
//! The sender is [`Sender::is_ours`] when the bot id, app id or user is ours
//! (from [`ParseContext`]) or when the message's `metadata.event_type` is
//! [`ParseContext::relay_marker`], the marker we put on everything we post
//! (including posts with a puppet's `username` and through linked accounts).

mod calls;
pub mod command;
mod json;
mod message;
mod other;
mod sender;
mod socket;

#[cfg(test)]
mod corpus_tests;
#[cfg(test)]
mod tests;

use crate::names::Names;
use json::Obj;
use serde_json::Value;
use switchboard_model::{BridgeId, EventId, Inbound, InboundKind, Origin, Sender, Timestamp};

pub use command::{Command, parse_command_form, parse_command_payload};
pub use socket::{SocketFrame, parse_socket_frame};

/// The `metadata.event_type` Switchboard puts on its own posts unless
/// configured otherwise.
pub const DEFAULT_RELAY_MARKER: &str = "switchboard_relay";

/// The URL given to a file Slack only announced as a stub (Slack Connect,
/// `file_access: "check_file_info"`): `files.info:F…` tells the connector to
/// look the file up with `files.info` before fetching it.
pub const STUB_FILE_URL_PREFIX: &str = "files.info:";

/// What the parser needs to know about the installation it parses for.
#[derive(Clone, Copy)]
pub struct ParseContext<'a> {
    /// The bridge whose events these are.
    pub bridge: &'a BridgeId,
    /// Our workspace (`T…`). When set, wrapped events meant for another
    /// installation are ignored ([`IgnoreReason::OtherTeam`]).
    pub team: Option<&'a str>,
    /// Our bot's id (`B…`).
    pub our_bot_id: Option<&'a str>,
    /// Our app's id (`A…`).
    pub our_app_id: Option<&'a str>,
    /// Our bot's user id (`U…`).
    pub our_bot_user: Option<&'a str>,
    /// Display names of users and channels, for senders and mentions.
    pub names: &'a dyn Names,
    /// The `metadata.event_type` we put on every message we post; a message
    /// carrying it is ours, whatever account posted it.
    pub relay_marker: &'a str,
}

impl<'a> ParseContext<'a> {
    /// A context that knows nothing about our own identity yet.
    pub fn new(bridge: &'a BridgeId, names: &'a dyn Names) -> Self {
        ParseContext {
            bridge,
            team: None,
            our_bot_id: None,
            our_app_id: None,
            our_bot_user: None,
            names,
            relay_marker: DEFAULT_RELAY_MARKER,
        }
    }
}

impl std::fmt::Debug for ParseContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParseContext")
            .field("bridge", &self.bridge)
            .field("team", &self.team)
            .field("our_bot_id", &self.our_bot_id)
            .field("our_app_id", &self.our_app_id)
            .field("our_bot_user", &self.our_bot_user)
            .field("relay_marker", &self.relay_marker)
            .finish_non_exhaustive()
    }
}

/// What a payload means for the daemon.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// Slack checks a new Request URL: answer 200 with the challenge.
    UrlVerification {
        /// The value to echo back.
        challenge: String,
    },
    /// Canonical events, in the order they happened (usually one).
    Events(Vec<Inbound>),
    /// Slack stopped delivering events for the rest of this minute
    /// (more than 30,000 deliveries per hour).
    AppRateLimited {
        /// The limited minute, in Unix seconds (`minute_rate_limited`).
        minute: i64,
    },
    /// Understood and deliberately not relayed.
    Ignored(IgnoreReason),
}

/// Why a well-formed payload is not relayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IgnoreReason {
    /// An event type this parser does not know.
    UnknownEventType(String),
    /// A known event type that Switchboard does not relay (`channel_created`,
    /// `user_change`, `app_mention` (the same message also arrives as a
    /// `message` event), `call_rejected`…).
    NotRelayed(String),
    /// A message subtype that is not relayed (`channel_archive`, `channel_name`…).
    UnsupportedSubtype(String),
    /// A hidden message subtype other than edits and deletes (`message_replied`…).
    Hidden(String),
    /// A `message_changed` (or huddle/call update) that changes nothing
    /// relayed: an unfurl was added, language metadata was updated…
    Unchanged,
    /// A message with no text, files or shared messages.
    EmptyMessage,
    /// A reaction to something other than a message (a file…).
    NotAMessageItem(String),
    /// A wrapped event for another workspace's installation.
    OtherTeam(String),
    /// An event without a channel to attribute it to (`user_huddle_changed`).
    NoChannel(String),
}

impl IgnoreReason {
    /// A short, bounded name for logs and metric labels.
    pub fn label(&self) -> &'static str {
        match self {
            IgnoreReason::UnknownEventType(_) => "unknown_event_type",
            IgnoreReason::NotRelayed(_) => "not_relayed",
            IgnoreReason::UnsupportedSubtype(_) => "unsupported_subtype",
            IgnoreReason::Hidden(_) => "hidden",
            IgnoreReason::Unchanged => "unchanged",
            IgnoreReason::EmptyMessage => "empty_message",
            IgnoreReason::NotAMessageItem(_) => "not_a_message_item",
            IgnoreReason::OtherTeam(_) => "other_team",
            IgnoreReason::NoChannel(_) => "no_channel",
        }
    }
}

impl std::fmt::Display for IgnoreReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IgnoreReason::UnknownEventType(t) => write!(f, "unknown event type {t:?}"),
            IgnoreReason::NotRelayed(t) => write!(f, "event type {t:?} is not relayed"),
            IgnoreReason::UnsupportedSubtype(s) => {
                write!(f, "message subtype {s:?} is not relayed")
            }
            IgnoreReason::Hidden(s) => write!(f, "hidden message subtype {s:?}"),
            IgnoreReason::Unchanged => f.write_str("message_changed without a relayed change"),
            IgnoreReason::EmptyMessage => f.write_str("message without text or files"),
            IgnoreReason::NotAMessageItem(t) => write!(f, "reaction to a {t:?}, not a message"),
            IgnoreReason::OtherTeam(t) => write!(f, "event for another workspace ({t})"),
            IgnoreReason::NoChannel(t) => write!(f, "{t:?} names no channel"),
        }
    }
}

/// Why a payload could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// Not JSON at all (the parser's message, which names a position, never content).
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    /// JSON, but not an object.
    #[error("payload is not a JSON object")]
    NotAnObject,
    /// A required field is absent or null (dotted path inside the event).
    #[error("missing field {0:?}")]
    MissingField(&'static str),
    /// A form-encoded body (a slash command over HTTP) that does not decode.
    #[error("invalid form body: {0}")]
    InvalidForm(&'static str),
    /// A required field has the wrong JSON type.
    #[error("field {field:?} is not {expected}")]
    WrongType {
        /// The field.
        field: &'static str,
        /// What it should have been ("a string", "an object"…).
        expected: &'static str,
    },
}

impl Rejected {
    /// A short, bounded name for logs and metric labels.
    pub fn label(&self) -> &'static str {
        match self {
            Rejected::InvalidJson(_) => "invalid_json",
            Rejected::NotAnObject => "not_an_object",
            Rejected::MissingField(_) => "missing_field",
            Rejected::InvalidForm(_) => "invalid_form",
            Rejected::WrongType { .. } => "wrong_type",
        }
    }
}

/// Parses an Events API payload: an HTTP request body, or a Socket Mode
/// envelope's `payload`.
///
/// Besides the `event_callback` wrapper this accepts a bare inner event
/// (`{"type":"message",…}`), as the archived RTM-era docs and history
/// catch-up produce; such events get derived ids (see the module docs).
pub fn parse_payload(body: &[u8], ctx: &ParseContext<'_>) -> Result<Payload, Rejected> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| Rejected::InvalidJson(e.to_string()))?;
    parse_value(&value, ctx)
}

/// [`parse_payload`] for an already parsed JSON value.
pub fn parse_value(value: &Value, ctx: &ParseContext<'_>) -> Result<Payload, Rejected> {
    let payload = value.as_object().ok_or(Rejected::NotAnObject)?;
    match json::req_nonempty(payload, "type")? {
        "url_verification" => url_verification(payload),
        "app_rate_limited" => app_rate_limited(payload),
        "event_callback" => event_callback(payload, ctx),
        _ => parse_event(payload, &Wrapper::default(), ctx),
    }
}

/// Parses one message object from `conversations.history` or
/// `conversations.replies` (catch-up after downtime), which carries neither
/// its channel nor a wrapper: `channel` is supplied, and the event id is
/// derived as for bare events (`"{channel}:{ts}:{subtype or message}"`).
pub fn parse_history_message(
    channel: &str,
    message: &Value,
    ctx: &ParseContext<'_>,
) -> Result<Payload, Rejected> {
    let mut event = message.as_object().ok_or(Rejected::NotAnObject)?.clone();
    event
        .entry("type")
        .or_insert_with(|| Value::from("message"));
    event.insert("channel".to_owned(), Value::from(channel));
    parse_event(&event, &Wrapper::default(), ctx)
}

/// `{"type":"url_verification","challenge":…}`.
fn url_verification(payload: &Obj) -> Result<Payload, Rejected> {
    let challenge = json::req_str(payload, "challenge")?;
    Ok(Payload::UrlVerification {
        challenge: challenge.to_owned(),
    })
}

/// `{"type":"app_rate_limited","minute_rate_limited":…}`.
fn app_rate_limited(payload: &Obj) -> Result<Payload, Rejected> {
    let minute = json::req_i64(payload, "minute_rate_limited")?;
    Ok(Payload::AppRateLimited { minute })
}

/// The `event_callback` wrapper around one inner event.
fn event_callback(payload: &Obj, ctx: &ParseContext<'_>) -> Result<Payload, Rejected> {
    let event = json::req_obj(payload, "event")?;
    if let Some(team) = foreign_team(payload, ctx) {
        return Ok(Payload::Ignored(IgnoreReason::OtherTeam(team.to_owned())));
    }
    let wrapper = Wrapper {
        event_id: json::opt_str(payload, "event_id"),
        event_time: json::opt_i64(payload, "event_time"),
    };
    parse_event(event, &wrapper, ctx)
}

/// The wrapper's team, when `ctx.team` is set and neither the wrapper
/// (`team_id`, `context_team_id`) nor any of its `authorizations` is for it.
/// Shared channels deliver with the *source* team as `team_id`, hence the
/// authorizations.
fn foreign_team<'p>(payload: &'p Obj, ctx: &ParseContext<'_>) -> Option<&'p str> {
    let ours = ctx.team?;
    let team = json::opt_str(payload, "team_id")?;
    let authorized = json::opt_array(payload, "authorizations")
        .iter()
        .filter_map(|a| a.as_object())
        .filter_map(|a| json::opt_str(a, "team_id"));
    let mut teams = [Some(team), json::opt_str(payload, "context_team_id")]
        .into_iter()
        .flatten()
        .chain(authorized);
    (!teams.any(|t| t == ours)).then_some(team)
}

/// Known event types that are deliberately not relayed.
const NOT_RELAYED: &[&str] = &[
    "app_home_opened",
    "app_mention",
    "app_uninstalled",
    "assistant_thread_context_changed",
    "assistant_thread_started",
    "call_rejected",
    "channel_archive",
    "channel_created",
    "channel_deleted",
    "channel_history_changed",
    "channel_id_changed",
    "channel_left",
    "channel_shared",
    "channel_unarchive",
    "channel_unshared",
    "dnd_updated_user",
    "emoji_changed",
    "file_change",
    "file_created",
    "file_deleted",
    "file_public",
    "file_shared",
    "file_unshared",
    "goodbye",
    "group_archive",
    "group_deleted",
    "group_left",
    "group_unarchive",
    "hello",
    "im_created",
    "link_shared",
    "pin_added",
    "pin_removed",
    "star_added",
    "star_removed",
    "subteam_created",
    "subteam_updated",
    "team_join",
    "tokens_revoked",
    "user_change",
    "user_profile_changed",
    "user_status_changed",
];

/// Dispatches one inner event by its `type`.
fn parse_event(
    event: &Obj,
    wrapper: &Wrapper<'_>,
    ctx: &ParseContext<'_>,
) -> Result<Payload, Rejected> {
    let at = Parsing {
        event,
        wrapper,
        ctx,
    };
    match json::req_nonempty(event, "type")? {
        "message" => message::parse(&at),
        "reaction_added" => other::reaction(&at, true),
        "reaction_removed" => other::reaction(&at, false),
        "member_joined_channel" => other::member_event(&at, true),
        "member_left_channel" => other::member_event(&at, false),
        "channel_rename" | "group_rename" => other::channel_rename(&at),
        "user_huddle_changed" => Ok(calls::user_huddle_changed()),
        t if NOT_RELAYED.contains(&t) => Ok(ignored(IgnoreReason::NotRelayed(t.to_owned()))),
        t => Ok(ignored(IgnoreReason::UnknownEventType(t.to_owned()))),
    }
}

/// What the `event_callback` wrapper says about its event.
#[derive(Debug, Default)]
struct Wrapper<'p> {
    /// `event_id` (`Ev…`).
    event_id: Option<&'p str>,
    /// `event_time`, Unix seconds.
    event_time: Option<i64>,
}

/// One inner event being parsed, with everything the handlers need.
struct Parsing<'p, 'c> {
    /// The inner event.
    event: &'p Obj,
    /// Its wrapper (empty for bare events).
    wrapper: &'p Wrapper<'p>,
    /// The installation.
    ctx: &'p ParseContext<'c>,
}

impl Parsing<'_, '_> {
    /// The event type, or subtype for messages, for derived ids.
    fn what(&self) -> &str {
        json::opt_str(self.event, "subtype")
            .or_else(|| json::opt_str(self.event, "type"))
            .unwrap_or("event")
    }

    /// The event's own ts: `event_ts`, else `ts`.
    fn event_ts(&self) -> Option<&str> {
        json::opt_str(self.event, "event_ts").or_else(|| json::opt_str(self.event, "ts"))
    }

    /// The event id: the wrapper's, else `"{channel}:{event ts}:{what}{extra}"`.
    fn event_id(&self, channel: &str, extra: &str) -> EventId {
        match self.wrapper.event_id {
            Some(id) => EventId::new(id),
            None => EventId::new(format!(
                "{channel}:{}:{}{extra}",
                self.event_ts().unwrap_or("0"),
                self.what()
            )),
        }
    }

    /// When it happened: the event's ts, else the wrapper's `event_time`,
    /// else now.
    fn at(&self) -> Timestamp {
        self.event_ts()
            .and_then(json::ts_millis)
            .or_else(|| {
                self.wrapper
                    .event_time
                    .and_then(|s| u64::try_from(s).ok())
                    .and_then(|s| s.checked_mul(1000))
            })
            .map_or_else(Timestamp::now, Timestamp)
    }

    /// An inbound event in `channel`.
    fn inbound(&self, channel: &str, extra: &str, sender: Sender, kind: InboundKind) -> Inbound {
        Inbound::new(
            Origin::new(self.ctx.bridge.clone(), channel),
            self.event_id(channel, extra),
            sender,
            kind,
        )
        .at(self.at())
    }
}

/// Events from one payload; the second and later get `#n` appended to their
/// event id so the relay's deduplication keeps them apart.
fn events(mut list: Vec<Inbound>) -> Payload {
    for (n, inbound) in list.iter_mut().enumerate().skip(1) {
        inbound.event = EventId::new(format!("{}#{n}", inbound.event));
    }
    Payload::Events(list)
}

/// One event.
fn one(inbound: Inbound) -> Payload {
    Payload::Events(vec![inbound])
}

/// Ignored for `reason`.
fn ignored(reason: IgnoreReason) -> Payload {
    Payload::Ignored(reason)
}
