//! `chat.postMessage`, `chat.update`, `chat.delete`, `chat.getPermalink`.
//!
//! Limits as currently documented: `chat.postMessage` truncates `text` above 40,000
//! characters and still posts, with the `message_truncated` warning
//! (<https://docs.slack.dev/changelog/2018-04-truncating-really-long-messages>), while
//! `chat.update` refuses more than 4,000 characters with `msg_too_long`. Apps may only edit
//! and delete their own messages, people theirs (`cant_update_message`, `cant_delete_message`).

use serde_json::{Map, Value, json};

use super::{ApiError, ApiResult, Caller, Ctx, Reply, can_see};
use crate::ids::{Ts, uuid_v4};
use crate::lock;
use crate::render::{self, For};
use crate::state::{Author, Kind, Message, NewMessage, State};

/// Characters `chat.postMessage` keeps before truncating.
pub const POST_TEXT_LIMIT: usize = 40_000;
/// Characters `chat.update` accepts.
pub const UPDATE_TEXT_LIMIT: usize = 4_000;
/// Blocks per message.
pub const MAX_BLOCKS: usize = 50;

/// Parses `blocks` (a JSON string or array) into block objects.
pub fn parse_blocks(ctx: &Ctx<'_>) -> Result<Option<Vec<Value>>, ApiError> {
    let Some(v) = ctx.args.json("blocks") else {
        return Ok(None);
    };
    let Ok(Value::Array(blocks)) = v else {
        return Err("invalid_blocks_format".into());
    };
    if blocks.is_empty() {
        return Ok(None);
    }
    if blocks.len() > MAX_BLOCKS {
        return Err("invalid_blocks".into());
    }
    let mut out = Vec::with_capacity(blocks.len());
    for b in blocks {
        let Value::Object(mut o) = b else {
            return Err("invalid_blocks".into());
        };
        if !o.get("type").is_some_and(Value::is_string) {
            return Err("invalid_blocks".into());
        }
        o.entry("block_id")
            .or_insert_with(|| json!(crate::ids::block_id()));
        out.push(Value::Object(o));
    }
    Ok(Some(out))
}

fn parse_attachments(ctx: &Ctx<'_>) -> Result<Option<Value>, ApiError> {
    match ctx.args.json("attachments") {
        None => Ok(None),
        Some(Ok(Value::Array(a))) if a.is_empty() => Ok(None),
        Some(Ok(Value::Array(a))) => {
            if a.len() > 100 {
                return Err("too_many_attachments".into());
            }
            let with_ids: Vec<Value> = a
                .into_iter()
                .enumerate()
                .map(|(i, mut at)| {
                    if let Value::Object(o) = &mut at {
                        o.entry("id").or_insert_with(|| json!(i + 1));
                    }
                    at
                })
                .collect();
            Ok(Some(Value::Array(with_ids)))
        }
        Some(_) => Err("invalid_attachments".into()),
    }
}

/// Parses `metadata` (`{"event_type": …, "event_payload": {…}}`).
pub fn parse_metadata(ctx: &Ctx<'_>) -> Result<Option<Value>, ApiError> {
    match ctx.args.json("metadata") {
        None => Ok(None),
        Some(Err(())) => Err("invalid_metadata_format".into()),
        Some(Ok(Value::Object(o))) => {
            let ok = o.get("event_type").is_some_and(Value::is_string)
                && o.get("event_payload").is_some_and(Value::is_object);
            if !ok {
                return Err("invalid_metadata_schema".into());
            }
            if Value::Object(o.clone()).to_string().len() > 8_000 {
                return Err("metadata_too_large".into());
            }
            Ok(Some(Value::Object(o)))
        }
        Some(Ok(_)) => Err("invalid_metadata_format".into()),
    }
}

/// The author for a post by `c`, applying `username`/`icon_*` (bots only, with
/// `chat:write.customize`; `icon_emoji` wins over `icon_url`).
pub fn author_for(ctx: &Ctx<'_>, c: &Caller) -> Result<Author, ApiError> {
    if !c.is_bot() {
        return Ok(Author::User(c.user.clone()));
    }
    let username = ctx.args.nonempty("username");
    let emoji = ctx.args.nonempty("icon_emoji");
    let url = ctx.args.nonempty("icon_url");
    if username.is_none() && emoji.is_none() && url.is_none() {
        return Ok(Author::Bot {
            username: None,
            icons: None,
        });
    }
    c.require("chat:write.customize")?;
    let icons = match (emoji, url) {
        (Some(e), _) => {
            let mut m = Map::new();
            m.insert("emoji".into(), json!(e.trim_matches(':')));
            Some(m)
        }
        (None, Some(u)) => {
            let mut m = Map::new();
            m.insert("image_64".into(), json!(u));
            Some(m)
        }
        (None, None) => None,
    };
    Ok(Author::Bot { username, icons })
}

/// Resolves the `channel` argument for posting: an id, a `#name`, or a user id (the DM
/// with that user). Checks visibility, archival and membership.
pub fn postable_channel(st: &mut State, c: &Caller, key: &str) -> Result<String, ApiError> {
    let id = if let Some(ch) = st.resolve_channel(key) {
        ch.id.clone()
    } else if key.starts_with(['U', 'W']) && st.user(key).is_some() {
        st.open_im(&c.user, key).0
    } else {
        return Err("channel_not_found".into());
    };
    let ch = st.channel(&id).ok_or("channel_not_found")?;
    if !can_see(c, ch) {
        return Err("channel_not_found".into());
    }
    if ch.archived {
        return Err("is_archived".into());
    }
    if !ch.is_member(&c.user) {
        let public_ok = ch.kind == Kind::Public && c.is_bot() && c.has("chat:write.public");
        if !public_ok {
            return Err("not_in_channel".into());
        }
    }
    Ok(id)
}

fn truncate_chars(s: &str, max: usize) -> Option<String> {
    s.char_indices().nth(max).map(|(i, _)| s[..i].to_string())
}

// chat.postMessage — https://docs.slack.dev/reference/methods/chat.postMessage
/// Posts a message (threaded with `thread_ts`, broadcast with `reply_broadcast`).
pub fn post_message(ctx: &Ctx<'_>) -> ApiResult {
    let c = ctx.caller()?;
    let key = ctx.args.nonempty("channel").ok_or("channel_not_found")?;
    let markdown = ctx.args.nonempty("markdown_text");
    let mut text = ctx.args.str("text").unwrap_or_default();
    let blocks = parse_blocks(ctx)?;
    if let Some(md) = markdown {
        if !text.is_empty() || blocks.is_some() {
            return Err("markdown_text_conflict".into());
        }
        if md.chars().count() > 12_000 {
            return Err("msg_too_long".into());
        }
        text = md;
    }
    let attachments = parse_attachments(ctx)?;
    if text.is_empty() && blocks.is_none() && attachments.is_none() {
        return Err("no_text".into());
    }
    let metadata = parse_metadata(ctx)?;
    let author = author_for(ctx, c)?;
    let mut reply_warnings = Vec::new();
    if let Some(t) = truncate_chars(&text, POST_TEXT_LIMIT) {
        text = t;
        reply_warnings.push((
            "message_truncated",
            "[WARN] Your message was truncated but still posted. The `text` field accepts up to 40,000 characters.",
        ));
    }
    let thread_ts = ctx.args.nonempty("thread_ts").and_then(|s| Ts::parse(&s));
    let broadcast = ctx.args.bool("reply_broadcast") == Some(true);
    let client_msg_id = ctx.args.nonempty("client_msg_id").or_else(|| {
        // Messages people write carry a client_msg_id; user-token posts stand for that.
        (!c.is_bot()).then(uuid_v4)
    });
    ctx.sim.mutate(|st, out| {
        let channel = postable_channel(st, c, &key)?;
        let nm = NewMessage {
            author,
            text,
            blocks,
            attachments,
            thread_ts,
            broadcast,
            client_msg_id,
            metadata,
            files: Vec::new(),
            subtype: None,
            room: None,
            inviter: None,
        };
        let ts = st.post(&channel, nm, out).ok_or("channel_not_found")?;
        let ch = st.channel(&channel).ok_or("channel_not_found")?;
        let m = ch.messages.get(&ts).ok_or("message_not_found")?;
        let mut reply = Reply::json(json!({
            "channel": channel,
            "ts": ts.to_string(),
            "message": render::message(st, ch, m, For::Api),
        }));
        for (code, msg) in reply_warnings {
            reply = reply.warn(code, msg);
        }
        Ok(reply)
    })
}

/// Is `c` the author of `m` (apps edit their bot's messages, people their own)?
fn authored_by(m: &Message, c: &Caller) -> bool {
    match &m.author {
        Author::Bot { .. } => c.is_bot(),
        Author::User(u) => !c.is_bot() && *u == c.user,
        Author::Slackbot => false,
    }
}

fn channel_and_ts(ctx: &Ctx<'_>, ts_arg: &str) -> Result<(String, Ts), ApiError> {
    let channel = ctx.args.nonempty("channel").ok_or("channel_not_found")?;
    let ts = ctx
        .args
        .nonempty(ts_arg)
        .and_then(|s| Ts::parse(&s))
        .ok_or("message_not_found")?;
    Ok((channel, ts))
}

// chat.update — https://docs.slack.dev/reference/methods/chat.update
/// Edits the caller's own message; `msg_too_long` above 4,000 characters.
pub fn update(ctx: &Ctx<'_>) -> ApiResult {
    let c = ctx.caller()?;
    let (channel, ts) = channel_and_ts(ctx, "ts")?;
    let text = ctx.args.str("text");
    if text
        .as_ref()
        .is_some_and(|t| t.chars().count() > UPDATE_TEXT_LIMIT)
    {
        return Err("msg_too_long".into());
    }
    let blocks = parse_blocks(ctx)?;
    let attachments = parse_attachments(ctx)?;
    let metadata = parse_metadata(ctx)?;
    if text.as_deref().is_none_or(str::is_empty) && blocks.is_none() && attachments.is_none() {
        return Err("no_text".into());
    }
    ctx.sim.mutate(|st, out| {
        let ch = st.channel(&channel).ok_or("channel_not_found")?;
        if !can_see(c, ch) {
            return Err("channel_not_found".into());
        }
        let m = ch.messages.get(&ts).ok_or("message_not_found")?;
        if !authored_by(m, c) {
            return Err("cant_update_message".into());
        }
        let editor = c.user.clone();
        st.update(
            &channel,
            ts,
            &editor,
            |m| {
                if let Some(t) = text {
                    m.text = t;
                }
                match blocks {
                    Some(b) => m.blocks = Some(b),
                    None if !m.text.is_empty() => {
                        m.blocks = Some(vec![crate::richtext::from_text(&m.text)]);
                    }
                    None => m.blocks = None,
                }
                if attachments.is_some() {
                    m.attachments = attachments;
                }
                if metadata.is_some() {
                    m.metadata = metadata;
                }
            },
            out,
        )
        .ok_or("message_not_found")?;
        let ch = st.channel(&channel).ok_or("channel_not_found")?;
        let m = ch.messages.get(&ts).ok_or("message_not_found")?;
        let mut message = render::message(st, ch, m, For::Api);
        message.remove("ts");
        Ok(Reply::json(json!({
            "channel": channel,
            "ts": ts.to_string(),
            "text": m.text,
            "message": message,
        })))
    })
}

// chat.delete — https://docs.slack.dev/reference/methods/chat.delete
/// Deletes the caller's own message (a thread parent with replies becomes a tombstone).
pub fn delete(ctx: &Ctx<'_>) -> ApiResult {
    let c = ctx.caller()?;
    let (channel, ts) = channel_and_ts(ctx, "ts")?;
    ctx.sim.mutate(|st, out| {
        let ch = st.channel(&channel).ok_or("channel_not_found")?;
        if !can_see(c, ch) {
            return Err("channel_not_found".into());
        }
        let m = ch.messages.get(&ts).ok_or("message_not_found")?;
        if m.subtype.as_deref() == Some("tombstone") {
            return Err("message_not_found".into());
        }
        if !authored_by(m, c) {
            return Err("cant_delete_message".into());
        }
        st.delete(&channel, ts, out).ok_or("message_not_found")?;
        Ok(Reply::json(
            json!({"channel": channel, "ts": ts.to_string()}),
        ))
    })
}

// chat.getPermalink — https://docs.slack.dev/reference/methods/chat.getPermalink
/// A permalink to a message the caller can see.
pub fn get_permalink(ctx: &Ctx<'_>) -> ApiResult {
    let c = ctx.caller()?;
    let (channel, ts) = channel_and_ts(ctx, "message_ts")?;
    let st = lock(&ctx.sim.state);
    let ch = st.channel(&channel).ok_or("channel_not_found")?;
    if !can_see(c, ch) {
        return Err("channel_not_found".into());
    }
    let m = ch.messages.get(&ts).ok_or("message_not_found")?;
    Ok(Reply::json(json!({
        "channel": channel,
        "permalink": render::permalink(&st, ch, m),
    })))
}
