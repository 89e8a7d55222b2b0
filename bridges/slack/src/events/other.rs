//! Reactions, channel membership and channel renames.
//!
//! - <https://docs.slack.dev/reference/events/reaction_added>,
//!   <https://docs.slack.dev/reference/events/reaction_removed>
//! - <https://docs.slack.dev/reference/events/member_joined_channel>,
//!   <https://docs.slack.dev/reference/events/member_left_channel>
//! - <https://docs.slack.dev/reference/events/channel_rename>

use super::json;
use super::{IgnoreReason, Parsing, Payload, Rejected, ignored, one, sender};
use crate::emoji;
use switchboard_model::{InboundKind, MemberChange, MessageId};

/// `reaction_added` / `reaction_removed` on a message (`item.type ==
/// "message"`); reactions to files are ignored.
pub(super) fn reaction(at: &Parsing<'_, '_>, added: bool) -> Result<Payload, Rejected> {
    let ev = at.event;
    let item = json::req_obj(ev, "item")?;
    let item_type = json::req_str(item, "type")?;
    if item_type != "message" {
        return Ok(ignored(IgnoreReason::NotAMessageItem(item_type.to_owned())));
    }
    let channel = json::req_nonempty(item, "channel")?;
    let target = MessageId::new(json::req_nonempty(item, "ts")?);
    let user = json::req_nonempty(ev, "user")?;
    let name = json::req_nonempty(ev, "reaction")?;
    let kind = InboundKind::Reaction {
        target,
        key: emoji::reaction_key(name),
        added,
    };
    let extra = format!(":{user}:{name}");
    Ok(one(at.inbound(
        channel,
        &extra,
        sender::of_user(user, at.ctx),
        kind,
    )))
}

/// `member_joined_channel` / `member_left_channel`.
pub(super) fn member_event(at: &Parsing<'_, '_>, joined: bool) -> Result<Payload, Rejected> {
    let ev = at.event;
    let channel = json::req_nonempty(ev, "channel")?;
    let user = json::req_nonempty(ev, "user")?;
    let sender = sender::of_user(user, at.ctx);
    let kind = InboundKind::Member {
        person: sender.person.clone(),
        change: if joined {
            MemberChange::Joined
        } else {
            MemberChange::Left
        },
    };
    Ok(one(at.inbound(channel, &format!(":{user}"), sender, kind)))
}

/// `channel_rename`: `{"channel": {"id", "name"}}`. Slack does not say who
/// renamed it, so Slack itself is the sender.
pub(super) fn channel_rename(at: &Parsing<'_, '_>) -> Result<Payload, Rejected> {
    let channel = json::req_obj(at.event, "channel")?;
    let id = json::req_nonempty(channel, "id")?;
    let name = json::req_str(channel, "name")?;
    let extra = format!(":{name}");
    let kind = InboundKind::ChannelInfo {
        name: Some(name.to_owned()),
        topic: None,
        avatar: None,
    };
    Ok(one(at.inbound(id, &extra, sender::slackbot(at.ctx), kind)))
}
