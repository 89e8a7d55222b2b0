//! `message` events and their subtypes.
//!
//! <https://docs.slack.dev/reference/events/message> lists the subtypes;
//! edits and deletes are described under
//! <https://docs.slack.dev/reference/events/message/message_changed> and
//! <https://docs.slack.dev/reference/events/message/message_deleted>. Deleting
//! a thread parent that has replies does not send `message_deleted` but a
//! `message_changed` whose new message is a `tombstone`.

use super::calls::Seen;
use super::json::{self, Obj};
use super::{
    IgnoreReason, Parsing, Payload, Rejected, STUB_FILE_URL_PREFIX, calls, ignored, one, sender,
};
use crate::{blocks, mrkdwn};
use serde_json::Value;
use switchboard_model::{
    Attachment, Block, InboundKind, Inline, MemberChange, Message, MessageId, MessageStyle,
    RichText, Sender,
};

/// Subtypes whose messages are relayed as messages. `reply_broadcast` is the
/// retired name of `thread_broadcast`.
const RELAYABLE: &[&str] = &[
    "bot_message",
    "me_message",
    "file_share",
    "thread_broadcast",
    "reply_broadcast",
];

/// Dispatches a `message` event by subtype.
pub(super) fn parse(at: &Parsing<'_, '_>) -> Result<Payload, Rejected> {
    match json::opt_str(at.event, "subtype") {
        None => new_message(at),
        Some(s) => by_subtype(at, s),
    }
}

/// Dispatches a `message` event with a subtype.
fn by_subtype(at: &Parsing<'_, '_>, subtype: &str) -> Result<Payload, Rejected> {
    match subtype {
        s if RELAYABLE.contains(&s) => new_message(at),
        "huddle_thread" => calls::huddle_message(at, at.event, Seen::New),
        "message_changed" => changed(at),
        "message_deleted" => deleted(at),
        "channel_join" | "group_join" => membership(at, MemberChange::Joined),
        "channel_leave" | "group_leave" => membership(at, MemberChange::Left),
        "channel_topic" | "group_topic" => channel_text(at, "topic"),
        "channel_purpose" | "group_purpose" => channel_text(at, "purpose"),
        other if json::flag(at.event, "hidden") => {
            Ok(ignored(IgnoreReason::Hidden(other.to_owned())))
        }
        other => Ok(ignored(IgnoreReason::UnsupportedSubtype(other.to_owned()))),
    }
}

/// A new message: text, files, thread placement; or a call when it carries
/// call blocks.
fn new_message(at: &Parsing<'_, '_>) -> Result<Payload, Rejected> {
    let ev = at.event;
    let channel = json::req_nonempty(ev, "channel")?;
    let ts = json::req_nonempty(ev, "ts")?;
    let sender = sender::of_message(ev, at.ctx).ok_or(Rejected::MissingField("user"))?;
    if calls::has_call_blocks(ev) {
        return calls::call_blocks(at, channel, ev, Seen::New, &sender);
    }
    let message = content(ev, ts, &sender, at);
    if message.body.is_empty() && message.attachments.is_empty() {
        return Ok(ignored(IgnoreReason::EmptyMessage));
    }
    let id = MessageId::new(ts);
    Ok(one(at.inbound(
        channel,
        "",
        sender,
        InboundKind::Message { id, message },
    )))
}

/// `message_changed`: an edit, a thread parent's tombstone, or a call update.
fn changed(at: &Parsing<'_, '_>) -> Result<Payload, Rejected> {
    let ev = at.event;
    let channel = json::req_nonempty(ev, "channel")?;
    let msg = json::req_obj(ev, "message")?;
    let prev = json::opt_obj(ev, "previous_message");
    let target = json::opt_nonempty(msg, "ts")
        .or_else(|| prev.and_then(|p| json::opt_nonempty(p, "ts")))
        .ok_or(Rejected::MissingField("message.ts"))?;
    match json::opt_str(msg, "subtype") {
        Some("tombstone") => Ok(tombstone(at, channel, target, msg, prev)),
        Some("huddle_thread") => calls::huddle_message(at, msg, Seen::Changed(prev)),
        Some(other) if !RELAYABLE.contains(&other) => {
            Ok(ignored(IgnoreReason::UnsupportedSubtype(other.to_owned())))
        }
        _ => edit(at, channel, target, msg, prev),
    }
}

/// A deleted thread parent (`message.subtype == "tombstone"`) is a delete,
/// attributed to the deleted message's author when Slack still says who.
fn tombstone(
    at: &Parsing<'_, '_>,
    channel: &str,
    target: &str,
    msg: &Obj,
    prev: Option<&Obj>,
) -> Payload {
    let sender = prev
        .and_then(|p| sender::of_message(p, at.ctx))
        .or_else(|| sender::of_message(msg, at.ctx))
        .unwrap_or_else(|| sender::slackbot(at.ctx));
    let target = MessageId::new(target);
    one(at.inbound(channel, "", sender, InboundKind::Delete { target }))
}

/// An edit of a relayable message, unless nothing relayed changed.
fn edit(
    at: &Parsing<'_, '_>,
    channel: &str,
    target: &str,
    msg: &Obj,
    prev: Option<&Obj>,
) -> Result<Payload, Rejected> {
    let sender = sender::of_message(msg, at.ctx)
        .or_else(|| prev.and_then(|p| sender::of_message(p, at.ctx)))
        .ok_or(Rejected::MissingField("message.user"))?;
    if calls::has_call_blocks(msg) {
        return calls::call_blocks(at, channel, msg, Seen::Changed(prev), &sender);
    }
    if prev.is_some_and(|p| same_content(msg, p)) {
        return Ok(ignored(IgnoreReason::Unchanged));
    }
    let message = content(msg, target, &sender, at);
    let target = MessageId::new(target);
    Ok(one(at.inbound(
        channel,
        "",
        sender,
        InboundKind::Edit { target, message },
    )))
}

/// `message_deleted`: a delete of `deleted_ts`, attributed to the deleted
/// message's author when `previous_message` says who, else to Slack.
fn deleted(at: &Parsing<'_, '_>) -> Result<Payload, Rejected> {
    let ev = at.event;
    let channel = json::req_nonempty(ev, "channel")?;
    let prev = json::opt_obj(ev, "previous_message");
    let target = json::opt_nonempty(ev, "deleted_ts")
        .or_else(|| prev.and_then(|p| json::opt_nonempty(p, "ts")))
        .ok_or(Rejected::MissingField("deleted_ts"))?;
    let sender = prev
        .and_then(|p| sender::of_message(p, at.ctx))
        .unwrap_or_else(|| sender::slackbot(at.ctx));
    let target = MessageId::new(target);
    Ok(one(at.inbound(
        channel,
        "",
        sender,
        InboundKind::Delete { target },
    )))
}

/// `channel_join`/`channel_leave` messages: the author joined or left.
fn membership(at: &Parsing<'_, '_>, change: MemberChange) -> Result<Payload, Rejected> {
    let ev = at.event;
    let channel = json::req_nonempty(ev, "channel")?;
    json::req_nonempty(ev, "user")?;
    let sender = sender::of_message(ev, at.ctx).ok_or(Rejected::MissingField("user"))?;
    let person = sender.person.clone();
    Ok(one(at.inbound(
        channel,
        "",
        sender,
        InboundKind::Member { person, change },
    )))
}

/// `channel_topic`/`channel_purpose` messages: the new text is the topic.
fn channel_text(at: &Parsing<'_, '_>, field: &'static str) -> Result<Payload, Rejected> {
    let ev = at.event;
    let channel = json::req_nonempty(ev, "channel")?;
    let topic = json::req_str(ev, field)?.to_owned();
    let sender = sender::of_message(ev, at.ctx).unwrap_or_else(|| sender::slackbot(at.ctx));
    let kind = InboundKind::ChannelInfo {
        name: None,
        topic: Some(topic),
        avatar: None,
    };
    Ok(one(at.inbound(channel, "", sender, kind)))
}

/// The canonical content of a message object whose ts is `ts`.
fn content(msg: &Obj, ts: &str, sender: &Sender, at: &Parsing<'_, '_>) -> Message {
    let style = if json::opt_str(msg, "subtype") == Some("me_message") {
        MessageStyle::Emote
    } else if sender.person.is_bot {
        MessageStyle::Notice
    } else {
        MessageStyle::Normal
    };
    let mut message = Message::new(body(msg, at)).with_style(style);
    message.attachments = files(msg);
    message.thread_root = json::opt_nonempty(msg, "thread_ts")
        .filter(|root| *root != ts)
        .map(MessageId::new);
    message
}

/// The body: the `rich_text` blocks when they say anything, else the mrkdwn
/// `text`; shared messages are appended as quotes.
fn body(msg: &Obj, at: &Parsing<'_, '_>) -> RichText {
    let ctx = at.ctx;
    let from_blocks = msg
        .get("blocks")
        .filter(|b| b.as_array().is_some_and(|a| !a.is_empty()))
        .and_then(|b| blocks::parse_rich_text(b, ctx.bridge, ctx.names))
        .filter(|rt| !rt.is_empty());
    let mut body = from_blocks.unwrap_or_else(|| {
        let text = json::opt_str(msg, "text").unwrap_or("");
        mrkdwn::parse(text, ctx.bridge, ctx.names)
    });
    let quotes: Vec<Block> = json::objects(msg, "attachments")
        .filter(|a| json::flag(a, "is_share"))
        .filter_map(|a| shared_quote(a, at))
        .collect();
    if !quotes.is_empty() {
        body.blocks.extend(quotes);
        body.normalize();
    }
    body
}

/// A forwarded/shared message (`attachments[]` entry with `is_share`) as a
/// quote headed by its author's name.
fn shared_quote(attachment: &Obj, at: &Parsing<'_, '_>) -> Option<Block> {
    let text = json::opt_nonempty(attachment, "text")
        .or_else(|| json::opt_nonempty(attachment, "fallback"))?;
    let mut blocks = Vec::new();
    if let Some(author) = json::opt_nonempty(attachment, "author_name") {
        blocks.push(Block::Paragraph {
            content: vec![Inline::Bold {
                content: vec![Inline::text(author)],
            }],
        });
    }
    blocks.extend(mrkdwn::parse(text, at.ctx.bridge, at.ctx.names).blocks);
    Some(Block::Quote { blocks })
}

/// The files of a message: `files[]`, or the legacy single `file`.
fn files(msg: &Obj) -> Vec<Attachment> {
    json::objects(msg, "files")
        .chain(json::opt_obj(msg, "file"))
        .filter_map(file)
        .collect()
}

/// One file object. Deleted (`mode: tombstone`) and plan-hidden
/// (`hidden_by_limit`) files have nothing to fetch and are skipped; stubs
/// without a URL (Slack Connect) get a [`STUB_FILE_URL_PREFIX`] URL.
fn file(f: &Obj) -> Option<Attachment> {
    let id = json::opt_nonempty(f, "id")?;
    if matches!(
        json::opt_str(f, "mode"),
        Some("tombstone" | "hidden_by_limit")
    ) {
        return None;
    }
    let url = json::opt_nonempty(f, "url_private_download")
        .or_else(|| json::opt_nonempty(f, "url_private"))
        .map_or_else(|| format!("{STUB_FILE_URL_PREFIX}{id}"), str::to_owned);
    let name = json::opt_nonempty(f, "name")
        .or_else(|| json::opt_nonempty(f, "title"))
        .unwrap_or(id);
    let mime = json::opt_nonempty(f, "mimetype").unwrap_or("application/octet-stream");
    let mut attachment = Attachment::new(id, name, mime, url);
    attachment.size = f.get("size").and_then(Value::as_u64);
    Some(attachment)
}

/// True when an edit leaves everything we relay as it was: the text, the
/// file ids and the blocks (ignoring their random `block_id`s).
fn same_content(msg: &Obj, prev: &Obj) -> bool {
    let file_ids = |m: &Obj| -> Vec<String> {
        json::objects(m, "files")
            .filter_map(|f| json::opt_str(f, "id"))
            .map(str::to_owned)
            .collect()
    };
    json::opt_str(msg, "text") == json::opt_str(prev, "text")
        && file_ids(msg) == file_ids(prev)
        && blocks_without_ids(msg) == blocks_without_ids(prev)
}

/// A message's blocks with their `block_id`s removed.
fn blocks_without_ids(msg: &Obj) -> Vec<Value> {
    json::opt_array(msg, "blocks")
        .iter()
        .map(|block| {
            let mut block = block.clone();
            if let Some(b) = block.as_object_mut() {
                b.remove("block_id");
            }
            block
        })
        .collect()
}
