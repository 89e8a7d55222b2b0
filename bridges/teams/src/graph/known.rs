//! What the connector keeps of the last version it saw of a message
//! ([`Known`]): enough to order a later version against it and to
//! [`diff`](super::diff) it, in a few hundred bytes instead of the message.
//!
//! The fields a diff compares (the body, the attachments, the edit time) and
//! the whole version are kept as 64-bit hashes keyed per process
//! ([`RandomState`]), so two different versions compare equal only by a
//! chance of about 2⁻⁶⁴, and nobody can choose a version to collide with
//! another. Reactions are kept as they are: a diff reports each one added or
//! removed. The author and the thread root are kept for one purpose, to
//! report the deletion of a message Graph no longer returns
//! ([`Known::gone`]).

use super::{Obj, Reaction, opt_array, opt_obj, opt_str, reactions, relay_marker_html};
use serde_json::{Map, Value};
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::OnceLock;

/// The fields of a message that make up its version: two versions with the
/// same time and no comparable etag are the same when these are equal.
pub const VERSION_FIELDS: &[&str] = &[
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

/// The last version seen of a message, without the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    /// `lastModifiedDateTime` in ms since the epoch (0 when absent).
    pub modified: u64,
    /// `etag` as a number, when it is one.
    pub etag: Option<u64>,
    /// Hash of [`VERSION_FIELDS`].
    whole: u64,
    /// Hash of what an edit changes: `lastEditedDateTime`, the body's
    /// content and the attachments.
    content: u64,
    /// `deletedDateTime` was set.
    pub(super) deleted: bool,
    /// The reactions, as [`diff`](super::diff) compares them.
    pub(super) reactions: Box<[Reaction]>,
    /// `replyToId`.
    reply_to: Option<Box<str>>,
    /// `from`, as JSON text.
    from: Option<Box<str>>,
    /// The body carried our relay marker.
    marked: bool,
}

/// The process's hash keys.
fn keys() -> &'static RandomState {
    static KEYS: OnceLock<RandomState> = OnceLock::new();
    KEYS.get_or_init(RandomState::new)
}

fn hash_fields(obj: &Obj, fields: &[&str]) -> u64 {
    let mut h = keys().build_hasher();
    for field in fields {
        obj.get(*field).hash(&mut h);
    }
    h.finish()
}

/// Hash of what an edit changes.
pub(super) fn content_hash(obj: &Obj) -> u64 {
    let mut h = keys().build_hasher();
    opt_str(obj, "lastEditedDateTime").hash(&mut h);
    opt_obj(obj, "body")
        .and_then(|b| opt_str(b, "content"))
        .unwrap_or("")
        .hash(&mut h);
    opt_array(obj, "attachments").hash(&mut h);
    h.finish()
}

/// `(lastModifiedDateTime in ms, etag)` of a message version.
pub fn version_of(message: &Value) -> (u64, Option<u64>) {
    let modified = message
        .get("lastModifiedDateTime")
        .and_then(Value::as_str)
        .and_then(super::parse_datetime)
        .unwrap_or(0);
    let etag = message
        .get("etag")
        .and_then(Value::as_str)
        .and_then(|e| e.trim_matches('"').parse().ok());
    (modified, etag)
}

impl Known {
    /// What is kept of `message`; `relay_marker` is the marker our posts
    /// carry (empty: none).
    pub fn of(message: &Value, relay_marker: &str) -> Known {
        let empty = Map::new();
        let obj = message.as_object().unwrap_or(&empty);
        let (modified, etag) = version_of(message);
        let marked = !relay_marker.is_empty()
            && opt_obj(obj, "body")
                .and_then(|b| opt_str(b, "content"))
                .is_some_and(|c| c.contains(&format!("itemid=\"{relay_marker}:")));
        Known {
            modified,
            etag,
            whole: hash_fields(obj, VERSION_FIELDS),
            content: content_hash(obj),
            deleted: opt_str(obj, "deletedDateTime").is_some(),
            reactions: reactions(obj).into_boxed_slice(),
            reply_to: opt_str(obj, "replyToId").map(Box::from),
            from: obj
                .get("from")
                .filter(|f| !f.is_null())
                .map(|f| Box::from(f.to_string())),
            marked,
        }
    }

    /// Whether `current` is a later version than this one: a later
    /// `lastModifiedDateTime`, else a greater etag, else (no comparable
    /// etag) any difference.
    pub fn is_older_than(&self, current: &Value) -> bool {
        let (cm, ce) = version_of(current);
        if cm != self.modified {
            return cm > self.modified;
        }
        match (self.etag, ce) {
            (Some(p), Some(c)) => c > p,
            _ => current
                .as_object()
                .is_none_or(|obj| hash_fields(obj, VERSION_FIELDS) != self.whole),
        }
    }

    /// Whether an edit changed the message between this version and `obj`.
    pub(super) fn edited_in(&self, obj: &Obj) -> bool {
        content_hash(obj) != self.content
    }

    /// The version of message `graph_id` Graph no longer returns: this one,
    /// deleted at `at` (Graph's time format), in `conversation` (a
    /// `channelIdentity` or `chatId` pair, as a chatMessage names it), with
    /// `relay_marker` in its body when this version carried it.
    pub fn gone(
        &self,
        graph_id: &str,
        conversation: (&str, Value),
        at: &str,
        relay_marker: &str,
    ) -> Value {
        let mut obj = Map::new();
        obj.insert("id".into(), Value::String(graph_id.to_owned()));
        if let Some(reply_to) = &self.reply_to {
            obj.insert("replyToId".into(), Value::String(reply_to.to_string()));
        }
        if let Some(from) = self
            .from
            .as_deref()
            .and_then(|f| serde_json::from_str(f).ok())
        {
            obj.insert("from".into(), from);
        }
        if self.marked {
            // The deletion of our own post is ours too, as the message was.
            obj.insert(
                "body".into(),
                serde_json::json!({ "contentType": "html", "content": relay_marker_html(relay_marker, "deleted") }),
            );
        }
        obj.insert(conversation.0.into(), conversation.1);
        obj.insert("lastModifiedDateTime".into(), Value::String(at.to_owned()));
        obj.insert("deletedDateTime".into(), Value::String(at.to_owned()));
        Value::Object(obj)
    }
}
