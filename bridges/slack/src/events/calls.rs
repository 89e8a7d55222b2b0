//! Huddles and Calls API calls as [`CallEvent`]s.
//!
//! - A huddle shows up as a `huddle_thread` message from `USLACKBOT` with a
//!   `room{}` object; Slack edits that message as people join and when the
//!   huddle ends (`message_changed`, `room.has_ended`, `date_end`).
//!   <https://docs.slack.dev/reference/objects/conversation-object>
//! - A Calls API call is a message with a `call` block, which Slack expands
//!   to `call.v1{join_url, has_ended, active_participants…}`.
//!   <https://docs.slack.dev/reference/methods/calls.add>,
//!   <https://docs.slack.dev/reference/block-kit/blocks/call-block>
//! - `user_huddle_changed` reports a user's huddle status without a channel.
//!   <https://docs.slack.dev/reference/events/user_huddle_changed>
//!
//! States: a new message is `Started`; a change is `Updated`; either is
//! `Ended { duration: date_end - date_start }` once `has_ended` is true.
//! Provider: huddles are [`CallProvider::SlackHuddle`]; call blocks are
//! [`CallProvider::SlackCall`] whichever app registered them (the block names
//! only the app's id, not a product name to put in `Other`).

use super::json::{self, Obj};
use super::{IgnoreReason, Parsing, Payload, Rejected, events, ignored, one, sender};
use crate::events::ParseContext;
use std::time::Duration;
use switchboard_model::{
    CallEvent, CallId, CallProvider, CallState, InboundKind, Person, Sender, UserId,
};

/// Whether a call's message is new or a change of an earlier one.
#[derive(Debug, Clone, Copy)]
pub(super) enum Seen<'a> {
    /// A new message.
    New,
    /// A `message_changed`, with the `previous_message` if Slack sent it.
    Changed(Option<&'a Obj>),
}

/// A `huddle_thread` message (`msg`; the event itself, or the `message` of a
/// `message_changed`) as a huddle call event.
pub(super) fn huddle_message(
    at: &Parsing<'_, '_>,
    msg: &Obj,
    seen: Seen<'_>,
) -> Result<Payload, Rejected> {
    let channel = json::req_nonempty(at.event, "channel")?;
    let room = json::req_obj(msg, "room")?;
    let room_id = json::req_nonempty(room, "id")?;
    let previous_room = match seen {
        Seen::Changed(prev) => prev.and_then(|p| json::opt_obj(p, "room")),
        Seen::New => None,
    };
    if previous_room.is_some_and(|prev| same_room(room, prev)) {
        return Ok(ignored(IgnoreReason::Unchanged));
    }
    let state = state(room, seen);
    let ended = matches!(state, CallState::Ended { .. });
    let mut call = CallEvent::new(
        CallId::new(format!("slack-huddle:{room_id}")),
        CallProvider::SlackHuddle,
        state,
    );
    call.title = json::opt_nonempty(room, "name").map(str::to_owned);
    call.join_url = json::opt_nonempty(room, "huddle_link").map(str::to_owned);
    call.started_by = started_by(room, at.ctx);
    call.participants = huddle_participants(room, ended, at.ctx);
    let sender = sender::of_message(msg, at.ctx).unwrap_or_else(|| sender::slackbot(at.ctx));
    Ok(one(at.inbound(
        channel,
        "",
        sender,
        InboundKind::Call(call),
    )))
}

/// True when a huddle's room changed nothing we report (a reply count or a
/// camera toggle changed, say).
fn same_room(room: &Obj, prev: &Obj) -> bool {
    [
        "has_ended",
        "date_end",
        "participants",
        "name",
        "huddle_link",
    ]
    .iter()
    .all(|k| room.get(*k) == prev.get(*k))
}

/// Who is in a huddle: `participants` while it runs; once it has ended (and
/// nobody is left) everyone who was ever in it, `participant_history`.
fn huddle_participants(room: &Obj, ended: bool, ctx: &ParseContext<'_>) -> Vec<Person> {
    let now: Vec<&str> = json::strings(room, "participants").collect();
    let ids = if ended && now.is_empty() {
        json::strings(room, "participant_history").collect()
    } else {
        now
    };
    ids.into_iter()
        .map(|u| sender::user_person(u, ctx))
        .collect()
}

/// True when a message carries at least one `call` block.
pub(super) fn has_call_blocks(msg: &Obj) -> bool {
    call_block_objects(msg).next().is_some()
}

/// The `call` blocks of a message.
fn call_block_objects(msg: &Obj) -> impl Iterator<Item = &Obj> {
    json::objects(msg, "blocks").filter(|b| json::opt_str(b, "type") == Some("call"))
}

/// The `call` objects of a message's call blocks.
fn call_values(msg: &Obj) -> impl Iterator<Item = Option<&serde_json::Value>> {
    call_block_objects(msg).map(|b| b.get("call"))
}

/// A message with call blocks: one call event per block, all from `sender`
/// (the app that posted it). A change that leaves the blocks alone is
/// [`IgnoreReason::Unchanged`].
pub(super) fn call_blocks(
    at: &Parsing<'_, '_>,
    channel: &str,
    msg: &Obj,
    seen: Seen<'_>,
    sender: &Sender,
) -> Result<Payload, Rejected> {
    if let Seen::Changed(Some(prev)) = seen
        && call_values(msg).eq(call_values(prev))
    {
        return Ok(ignored(IgnoreReason::Unchanged));
    }
    let list = call_block_objects(msg)
        .map(|block| call_block(block, seen, at.ctx))
        .map(|call| call.map(|c| at.inbound(channel, "", sender.clone(), InboundKind::Call(c))))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(events(list))
}

/// One `call` block. The unexpanded form (`{"type":"call","call_id":…}`,
/// what apps post) has only the id.
fn call_block(block: &Obj, seen: Seen<'_>, ctx: &ParseContext<'_>) -> Result<CallEvent, Rejected> {
    let v1 = json::opt_obj(block, "call").and_then(|c| json::opt_obj(c, "v1"));
    let id = v1
        .and_then(|v| json::opt_nonempty(v, "id"))
        .or_else(|| json::opt_nonempty(block, "call_id"))
        .ok_or(Rejected::MissingField("call_id"))?;
    let state = v1.map_or_else(|| state(&Obj::new(), seen), |v| state(v, seen));
    let ended = matches!(state, CallState::Ended { .. });
    let mut call = CallEvent::new(
        CallId::new(format!("slack-call:{id}")),
        CallProvider::SlackCall,
        state,
    );
    if let Some(v) = v1 {
        call.title = json::opt_nonempty(v, "name").map(str::to_owned);
        call.join_url = json::opt_nonempty(v, "join_url").map(str::to_owned);
        call.started_by = started_by(v, ctx);
        let list = if ended {
            "all_participants"
        } else {
            "active_participants"
        };
        call.participants = json::objects(v, list)
            .filter_map(|p| call_participant(p, ctx))
            .collect();
    }
    Ok(call)
}

/// A Calls API participant: a Slack user (`slack_id`) or someone outside
/// Slack (`external_id`, `display_name`, `avatar_url`), who becomes
/// `external:{external_id}`.
fn call_participant(p: &Obj, ctx: &ParseContext<'_>) -> Option<Person> {
    if let Some(user) = json::opt_nonempty(p, "slack_id") {
        return Some(sender::user_person(user, ctx));
    }
    let external = json::opt_nonempty(p, "external_id")?;
    let name = json::opt_nonempty(p, "display_name").unwrap_or(external);
    let mut person = Person::new(
        ctx.bridge.clone(),
        UserId::new(format!("external:{external}")),
        name,
    );
    person.avatar = json::opt_nonempty(p, "avatar_url").map(str::to_owned);
    Some(person)
}

/// `created_by` of a room or a call.
fn started_by(call: &Obj, ctx: &ParseContext<'_>) -> Option<Person> {
    json::opt_nonempty(call, "created_by").map(|u| sender::user_person(u, ctx))
}

/// The state of a room or `call.v1`.
fn state(call: &Obj, seen: Seen<'_>) -> CallState {
    if json::flag(call, "has_ended") {
        CallState::Ended {
            duration: duration(call),
        }
    } else if matches!(seen, Seen::New) {
        CallState::Started
    } else {
        CallState::Updated
    }
}

/// `date_end - date_start` (Unix seconds) when both are set and in order.
fn duration(call: &Obj) -> Option<Duration> {
    let start = json::opt_i64(call, "date_start").filter(|s| *s > 0)?;
    let end = json::opt_i64(call, "date_end").filter(|e| *e >= start)?;
    let secs = u64::try_from(end.checked_sub(start)?).ok()?;
    Some(Duration::from_secs(secs))
}

/// `user_huddle_changed` names the user's huddle (`huddle_state_call_id`) but
/// no channel, so there is no origin to report it from; the channel's
/// `huddle_thread` message carries the same call and its participants.
pub(super) fn user_huddle_changed() -> Payload {
    ignored(IgnoreReason::NoChannel("user_huddle_changed".to_owned()))
}
