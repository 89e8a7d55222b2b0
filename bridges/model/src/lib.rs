//! The canonical model every Switchboard bridge speaks.
//!
//! Nothing in here knows a platform. Connectors translate their platform's
//! events into [`Inbound`] values and carry out [`OutboundOp`]s; the relay in
//! the root crate moves one to the other. The pieces:
//!
//! - [`ids`]: opaque id newtypes, minted only by connectors and stored as-is.
//! - [`person`]: who wrote something ([`Person`], [`Sender`]) and how they appear
//!   elsewhere ([`PuppetRef`]).
//! - [`event`]: what arrives from a platform ([`Inbound`] and its [`InboundKind`]).
//! - [`outbound`]: what the relay asks a bridge to do ([`OutboundOp`]).
//! - [`recovery`]: finding what an earlier attempt of an op already posted
//!   ([`EarlierPosts`]).
//! - [`richtext`]: the hub format every dialect parses into and renders from.
//! - [`call`]: call and meeting invites ([`CallEvent`]).
//! - [`bridge`]: the [`Bridge`] trait, [`Capabilities`] and the context a bridge runs in.
//! - [`error`]: [`BridgeError`], whose kind decides what the relay does next.
//! - [`dialect`]: text formats that convert through RichText (`switchboard convert`).
//! - `testing` (feature): a programmable, file-backed in-memory bridge and the
//!   conformance suite every real bridge runs.

pub mod bridge;
pub mod call;
pub mod dialect;
pub mod error;
pub mod event;
pub mod html_tree;
pub mod http;
pub mod ids;
pub mod outbound;
pub mod person;
pub mod recovery;
pub mod richtext;
#[cfg(feature = "testing")]
pub mod testing;
mod time;

pub use bridge::{
    Bridge, BridgeContext, BridgeState, Capabilities, CursorStore, InboundSink, IntakeError,
    LoginFlow, MediaSource, MemoryCursors,
};
pub use call::{CallEvent, CallProvider, CallState, Meeting};
pub use dialect::Dialect;
pub use error::{BridgeError, RetryKind};
pub use event::{
    Attachment, ChannelInfo, Inbound, InboundKind, MemberChange, Message, MessageStyle, Origin,
};
pub use http::{HttpEndpoint, HttpRequest, HttpResponse};
pub use ids::{BridgeId, CallId, ChannelId, EventId, MessageId, OpId, UserId};
pub use outbound::{Delivered, OutboundKind, OutboundOp};
pub use person::{
    AccountsSlot, LinkedAccount, LinkedAccounts, NoLinkedAccounts, Person, PuppetRef, Sender,
};
pub use recovery::EarlierPosts;
pub use richtext::{Block, Inline, RichText, group_by_size};
pub use time::Timestamp;
