//! `systemEventMessage`s: calls, membership, renames
//! (<https://learn.microsoft.com/en-us/graph/system-messages>,
//! <https://learn.microsoft.com/en-us/graph/api/resources/eventmessagedetail>).
//!
//! The `eventDetail` type decides: `callStartedEventMessageDetail` and
//! `callEndedEventMessageDetail` are calls (`callId`, `callDuration`,
//! `callParticipants`, `initiator`), `membersAdded`/`membersJoined`/
//! `membersDeleted`/`membersLeft` membership (`members[]`), `chatRenamed`
//! (`chatDisplayName`), `channelRenamed` (`channelDisplayName`) and
//! `channelDescriptionUpdated` (`channelDescription`) channel info. Without
//! `Prefer: include-unknown-enum-members` Graph may say `unknownFutureValue`
//! instead; that and every other type is ignored by name.

use super::{
    Header, IgnoreReason, ParseContext, Parsed, identity_person, opt_array, opt_obj, opt_str, time,
};
use switchboard_model::{
    CallEvent, CallId, CallProvider, CallState, InboundKind, MemberChange, Person,
};

pub(super) fn parse(h: &Header<'_>, ctx: &ParseContext<'_>) -> Parsed {
    let Some(detail) = opt_obj(h.obj, "eventDetail") else {
        return Parsed::Ignored(IgnoreReason::SystemEvent("unknown".to_owned()));
    };
    let odata = opt_str(detail, "@odata.type").unwrap_or("unknown");
    let kind = odata
        .rsplit('.')
        .next()
        .unwrap_or(odata)
        .trim_start_matches('#');
    let at = h.time("createdDateTime");
    match kind {
        "callStartedEventMessageDetail" | "callEndedEventMessageDetail" => {
            let Some(call_id) = opt_str(detail, "callId") else {
                return Parsed::Ignored(IgnoreReason::SystemEvent(format!(
                    "{kind} without callId"
                )));
            };
            let state = if kind == "callStartedEventMessageDetail" {
                CallState::Started
            } else {
                CallState::Ended {
                    duration: opt_str(detail, "callDuration").and_then(time::parse_duration),
                }
            };
            let mut call = CallEvent::new(
                CallId::new(format!("teams-call:{call_id}")),
                CallProvider::TeamsMeeting,
                state,
            );
            call.started_by =
                opt_obj(detail, "initiator").and_then(|i| identity_person(i, ctx.bridge));
            // Graph gives a channel meeting no join link; the message's own
            // link opens the conversation in Teams, where the meeting shows
            // its Join button. (Chats have none.)
            call.join_url = opt_str(h.obj, "webUrl")
                .filter(|u| u.starts_with("https://"))
                .map(str::to_owned);
            call.participants = opt_array(detail, "callParticipants")
                .iter()
                .filter_map(|p| p.as_object())
                .filter_map(|p| opt_obj(p, "participant").or(Some(p)))
                .filter_map(|p| identity_person(p, ctx.bridge))
                .collect();
            let label = if matches!(call.state, CallState::Started) {
                "call_started"
            } else {
                "call_ended"
            };
            Parsed::Events(vec![h.inbound(label, at, InboundKind::Call(call))])
        }
        "membersAddedEventMessageDetail"
        | "membersJoinedEventMessageDetail"
        | "membersDeletedEventMessageDetail"
        | "membersLeftEventMessageDetail" => {
            let change = if kind.starts_with("membersAdded") || kind.starts_with("membersJoined") {
                MemberChange::Joined
            } else {
                MemberChange::Left
            };
            let people: Vec<Person> = opt_array(detail, "members")
                .iter()
                .filter_map(|m| m.as_object())
                .filter_map(|m| identity_person(m, ctx.bridge))
                .collect();
            if people.is_empty() {
                return Parsed::Ignored(IgnoreReason::SystemEvent(format!(
                    "{kind} without members"
                )));
            }
            Parsed::Events(
                people
                    .into_iter()
                    .map(|person| {
                        let label = format!("member:{}", person.user);
                        h.inbound(&label, at, InboundKind::Member { person, change })
                    })
                    .collect(),
            )
        }
        "chatRenamedEventMessageDetail" | "channelRenamedEventMessageDetail" => {
            let key = if kind.starts_with("chat") {
                "chatDisplayName"
            } else {
                "channelDisplayName"
            };
            channel_info(h, at, opt_str(detail, key).map(str::to_owned), None, kind)
        }
        "channelDescriptionUpdatedEventMessageDetail" => channel_info(
            h,
            at,
            None,
            Some(
                opt_str(detail, "channelDescription")
                    .unwrap_or("")
                    .to_owned(),
            ),
            kind,
        ),
        other => Parsed::Ignored(IgnoreReason::SystemEvent(other.to_owned())),
    }
}

fn channel_info(
    h: &Header<'_>,
    at: switchboard_model::Timestamp,
    name: Option<String>,
    topic: Option<String>,
    kind: &str,
) -> Parsed {
    if name.is_none() && topic.is_none() {
        return Parsed::Ignored(IgnoreReason::SystemEvent(format!("{kind} without a value")));
    }
    Parsed::Events(vec![h.inbound(
        "channel_info",
        at,
        InboundKind::ChannelInfo {
            name,
            topic,
            avatar: None,
        },
    )])
}
