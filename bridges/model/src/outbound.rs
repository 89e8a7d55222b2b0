//! Outbound operations: what the relay asks a bridge to do.
//!
//! Every id inside an [`OutboundOp`] is already the *target* platform's id:
//! the relay resolves the origin's message ids through its mappings before it
//! hands the op over, and waits when a target has not been delivered yet.

use crate::call::CallEvent;
use crate::event::{ChannelInfo, Message, Origin};
use crate::ids::{ChannelId, MessageId, OpId};
use crate::person::{Person, PuppetRef};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// One operation for one target channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct OutboundOp {
    /// Unique and stable across retries and restarts. Bridges use it to make
    /// delivery idempotent: delivering the same op twice must not post twice.
    pub id: OpId,
    /// The target channel on this bridge.
    pub channel: ChannelId,
    /// Where the op comes from (absent for the relay's own notices).
    pub origin: Option<Origin>,
    /// The person on whose behalf it is done (absent for the relay's own notices).
    pub on_behalf_of: Option<Person>,
    /// How that person appears on this bridge (absent: post as the bridge bot).
    pub author: Option<PuppetRef>,
    /// What to do.
    pub kind: OutboundKind,
    /// True when an earlier attempt may have reached the platform (the op was
    /// left in the outbox by a previous run, or an attempt failed in a way that
    /// may have been applied). Connectors whose platform has no idempotency key
    /// look for the op's own marker before posting again.
    #[serde(default)]
    pub maybe_delivered: bool,
    /// When the relay accepted the op. No attempt can have reached the
    /// platform before it, so a connector looking for an earlier attempt's
    /// marker reads the conversation back to here (less a clock margin)
    /// rather than a fixed number of messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued_at: Option<Timestamp>,
}

impl OutboundOp {
    /// An op with nothing but its id, channel and kind (posted by the bridge bot).
    pub fn new(id: OpId, channel: ChannelId, kind: OutboundKind) -> Self {
        OutboundOp {
            id,
            channel,
            origin: None,
            on_behalf_of: None,
            author: None,
            kind,
            maybe_delivered: false,
            queued_at: None,
        }
    }

    /// Marks the op as possibly delivered before.
    pub fn maybe_delivered(mut self, maybe: bool) -> Self {
        self.maybe_delivered = maybe;
        self
    }

    /// Sets where the op comes from and on whose behalf it is done.
    pub fn with_origin(mut self, origin: Option<Origin>, on_behalf_of: Option<Person>) -> Self {
        self.origin = origin;
        self.on_behalf_of = on_behalf_of;
        self
    }

    /// Sets when the relay accepted the op.
    pub fn queued_at(mut self, at: Timestamp) -> Self {
        self.queued_at = Some(at);
        self
    }

    /// Sets how the author appears on the target.
    pub fn with_author(mut self, author: Option<PuppetRef>) -> Self {
        self.author = author;
        self
    }

    /// An op posted by the bridge bot itself.
    pub fn from_bot(id: OpId, channel: ChannelId, kind: OutboundKind) -> Self {
        OutboundOp::new(id, channel, kind)
    }

    /// An op done on behalf of a person from `origin`, shown as `author`.
    pub fn on_behalf(
        id: OpId,
        channel: ChannelId,
        origin: Origin,
        person: Person,
        author: Option<PuppetRef>,
        kind: OutboundKind,
    ) -> Self {
        OutboundOp::new(id, channel, kind)
            .with_origin(Some(origin), Some(person))
            .with_author(author)
    }
}

/// What an [`OutboundOp`] does. Ids are the target's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
#[non_exhaustive]
pub enum OutboundKind {
    /// Post a message. `reply_to` and `thread_root` inside are target ids.
    Send {
        /// The message.
        message: Message,
    },
    /// Replace the content of a message we posted earlier.
    Edit {
        /// Every part the original was posted as (first part first).
        parts: Vec<MessageId>,
        /// The new content.
        message: Message,
    },
    /// Delete a message we posted earlier, all of its parts.
    Delete {
        /// Every part.
        parts: Vec<MessageId>,
    },
    /// Add a reaction.
    React {
        /// The message reacted to.
        target: MessageId,
        /// The reaction key (Unicode emoji or `:shortcode:`).
        key: String,
    },
    /// Remove a reaction added earlier.
    Unreact {
        /// The message reacted to.
        target: MessageId,
        /// The reaction key.
        key: String,
        /// The id the reaction got when it was added, where the platform gives
        /// reactions ids (Matrix).
        reaction: Option<MessageId>,
    },
    /// Show a call invite, or update the one shown before.
    Call {
        /// The call's new state.
        event: CallEvent,
        /// The invite posted for this call earlier, if any: edit it rather
        /// than posting again.
        invite: Vec<MessageId>,
    },
    /// Give the channel this name, topic and avatar (the parts that are
    /// `Some`). Only bridges whose [`Capabilities::mirrors_channel_info`]
    /// is set get these.
    ///
    /// [`Capabilities::mirrors_channel_info`]: crate::Capabilities::mirrors_channel_info
    ChannelInfo {
        /// What to show.
        info: ChannelInfo,
    },
}

impl OutboundKind {
    /// A short, bounded name for logs and metric labels.
    pub fn label(&self) -> &'static str {
        match self {
            OutboundKind::Send { .. } => "send",
            OutboundKind::Edit { .. } => "edit",
            OutboundKind::Delete { .. } => "delete",
            OutboundKind::React { .. } => "react",
            OutboundKind::Unreact { .. } => "unreact",
            OutboundKind::Call { .. } => "call",
            OutboundKind::ChannelInfo { .. } => "channel_info",
        }
    }
}

/// What a delivery produced on the target.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivered {
    /// The ids of what was created, in order: one per part for a message split
    /// to fit the platform's length limit; the reaction's id where reactions
    /// have ids; empty for edits and deletes.
    pub ids: Vec<MessageId>,
}

impl Delivered {
    /// A delivery that created one object.
    pub fn one(id: MessageId) -> Self {
        Delivered { ids: vec![id] }
    }

    /// A delivery that created nothing addressable.
    pub fn none() -> Self {
        Delivered::default()
    }
}
