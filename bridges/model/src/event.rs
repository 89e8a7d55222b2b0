//! Inbound events: what a connector reports from its platform.

use crate::call::CallEvent;
use crate::ids::{BridgeId, ChannelId, EventId, MessageId};
use crate::person::{Person, Sender};
use crate::richtext::RichText;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// The channel an event happened in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Origin {
    /// The bridge.
    pub bridge: BridgeId,
    /// The channel on that bridge.
    pub channel: ChannelId,
}

impl Origin {
    /// An origin from its parts.
    pub fn new(bridge: impl Into<BridgeId>, channel: impl Into<ChannelId>) -> Self {
        Origin {
            bridge: bridge.into(),
            channel: channel.into(),
        }
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.bridge, self.channel)
    }
}

/// One event from a platform, normalised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Inbound {
    /// Where it happened.
    pub origin: Origin,
    /// The platform's unique id for this event. Platform retries carry the
    /// same id and are dropped by the relay.
    pub event: EventId,
    /// Who did it.
    pub sender: Sender,
    /// When the platform says it happened.
    pub at: Timestamp,
    /// What happened.
    pub kind: InboundKind,
}

impl Inbound {
    /// An inbound event stamped now.
    pub fn new(origin: Origin, event: EventId, sender: Sender, kind: InboundKind) -> Self {
        Inbound {
            origin,
            event,
            sender,
            at: Timestamp::now(),
            kind,
        }
    }

    /// Sets the platform's timestamp.
    pub fn at(mut self, at: Timestamp) -> Self {
        self.at = at;
        self
    }
}

/// What an inbound event is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum InboundKind {
    /// A new message.
    Message {
        /// Its id on the origin platform.
        id: MessageId,
        /// Its content.
        message: Message,
    },
    /// A message's content was replaced.
    Edit {
        /// The edited message.
        target: MessageId,
        /// The new content.
        message: Message,
    },
    /// A message was deleted.
    Delete {
        /// The deleted message.
        target: MessageId,
    },
    /// A reaction was added or removed.
    Reaction {
        /// The message reacted to.
        target: MessageId,
        /// The reaction: a Unicode emoji where the platform has one, else a
        /// `:shortcode:`.
        key: String,
        /// True when added, false when removed.
        added: bool,
    },
    /// A call or meeting changed state.
    Call(CallEvent),
    /// Someone asked for a new meeting for this conversation (`!call` in
    /// Matrix, `/switchboard call` in Slack, `call` addressed to the bot in
    /// Teams). The relay has one created by the portal's meeting provider and
    /// posts the invite to every member, this one included.
    CallRequest {
        /// The meeting's title, if the person gave one.
        title: Option<String>,
    },
    /// Someone addressed a command to the bridge's bot: `/switchboard …` in
    /// Slack, a message in a direct chat with the bot (Slack, Teams), or a
    /// message in a room the bot shares with nobody else (a Matrix
    /// management room). The channel need not be a portal. The relay
    /// carries it out and answers with a notice in the same channel.
    Command {
        /// What the person wrote, without the command's own name.
        text: String,
        /// The message that carried it, when it was one (written to the bot
        /// in a direct chat). If the chat has become a direct portal by the
        /// time the command is carried out (it was written just after `dm`)
        /// and the text is no command, the relay relays this message instead.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<(MessageId, Box<Message>)>,
    },
    /// Someone opened a direct conversation with a puppet of a person from
    /// another platform (a Matrix DM with a ghost user): the relay joins that
    /// conversation with a direct conversation with the person on their own
    /// platform, so that it becomes a two-member portal.
    DirectChat {
        /// The puppet addressed, as this bridge knows it (the ghost's id).
        puppet: crate::ids::UserId,
    },
    /// Someone joined or left the channel.
    Member {
        /// Who.
        person: Person,
        /// Joined or left.
        change: MemberChange,
    },
    /// Someone is typing.
    Typing,
    /// The channel's name, topic or avatar changed.
    ChannelInfo {
        /// New name, if changed.
        name: Option<String>,
        /// New topic, if changed.
        topic: Option<String>,
        /// New avatar URL, if changed.
        avatar: Option<String>,
    },
}

impl InboundKind {
    /// A short, bounded name for logs and metric labels.
    pub fn label(&self) -> &'static str {
        match self {
            InboundKind::Message { .. } => "message",
            InboundKind::Edit { .. } => "edit",
            InboundKind::Delete { .. } => "delete",
            InboundKind::Reaction { .. } => "reaction",
            InboundKind::Call(_) => "call",
            InboundKind::CallRequest { .. } => "call_request",
            InboundKind::Command { .. } => "command",
            InboundKind::DirectChat { .. } => "direct_chat",
            InboundKind::Member { .. } => "member",
            InboundKind::Typing => "typing",
            InboundKind::ChannelInfo { .. } => "channel_info",
        }
    }
}

/// A conversation's name, topic and avatar, as far as a platform gives them.
/// `None` means unknown or unchanged, never "cleared" (an empty string clears).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ChannelInfo {
    /// The name to show.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The topic or description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// An image URL anyone may fetch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar: Option<String>,
}

impl ChannelInfo {
    /// True when it says nothing.
    pub fn is_empty(&self) -> bool {
        self.name.is_none() && self.topic.is_none() && self.avatar.is_none()
    }
}

/// Joined or left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberChange {
    /// Joined the channel.
    Joined,
    /// Left the channel.
    Left,
}

/// How a message is meant to be shown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageStyle {
    /// An ordinary message.
    #[default]
    Normal,
    /// An automated notice (Matrix `m.notice`, Slack bot message).
    Notice,
    /// An action in the third person (`/me waves`).
    Emote,
}

/// A message's content.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Message {
    /// The text.
    pub body: RichText,
    /// How to show it.
    #[serde(default)]
    pub style: MessageStyle,
    /// Files attached to it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
    /// The message this one quotes or answers (on the origin platform).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<MessageId>,
    /// The root of the thread this message belongs to (on the origin platform).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_root: Option<MessageId>,
}

impl Message {
    /// A message with a body and nothing else.
    pub fn new(body: RichText) -> Self {
        Message {
            body,
            ..Message::default()
        }
    }

    /// A plain-text message.
    pub fn text(text: impl AsRef<str>) -> Self {
        Message::new(RichText::plain(text))
    }

    /// Sets the style.
    pub fn with_style(mut self, style: MessageStyle) -> Self {
        self.style = style;
        self
    }

    /// Adds an attachment.
    pub fn with_attachment(mut self, attachment: Attachment) -> Self {
        self.attachments.push(attachment);
        self
    }

    /// Sets the message this one answers.
    pub fn in_reply_to(mut self, id: MessageId) -> Self {
        self.reply_to = Some(id);
        self
    }

    /// Places the message in a thread.
    pub fn in_thread(mut self, root: MessageId) -> Self {
        self.thread_root = Some(root);
        self
    }
}

/// A file attached to a message. The bytes stay on the origin platform until
/// a target bridge asks for them through [`crate::MediaSource`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Attachment {
    /// The origin platform's id for the file.
    pub id: String,
    /// The file name.
    pub name: String,
    /// Its MIME type.
    pub mime: String,
    /// Its size in bytes, if known.
    pub size: Option<u64>,
    /// Where the origin bridge can fetch it (opaque to everyone else).
    pub url: String,
}

impl Attachment {
    /// An attachment from its parts.
    pub fn new(
        id: impl Into<String>,
        name: impl Into<String>,
        mime: impl Into<String>,
        url: impl Into<String>,
    ) -> Self {
        Attachment {
            id: id.into(),
            name: name.into(),
            mime: mime.into(),
            size: None,
            url: url.into(),
        }
    }

    /// Sets the size.
    pub fn with_size(mut self, size: u64) -> Self {
        self.size = Some(size);
        self
    }
}
