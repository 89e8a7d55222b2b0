//! Unit tests of the event mapping, on small hand-written payloads, and
//! property tests that no input panics.

use super::*;
use crate::names::StaticNames;
use proptest::prelude::*;
use serde_json::json;
use switchboard_model::{CallProvider, CallState, MemberChange, Message, MessageId, MessageStyle};

struct Fixture {
    bridge: BridgeId,
    names: StaticNames,
}

impl Fixture {
    fn new() -> Self {
        Fixture {
            bridge: BridgeId::new("slack:acme"),
            names: StaticNames {
                users: vec![("U1".into(), "Ada".into())],
                channels: vec![],
            },
        }
    }

    fn ctx(&self) -> ParseContext<'_> {
        ParseContext {
            team: Some("T1"),
            our_bot_id: Some("BOURS"),
            our_app_id: Some("AOURS"),
            our_bot_user: Some("UOURBOT"),
            ..ParseContext::new(&self.bridge, &self.names)
        }
    }

    fn parse(&self, value: Value) -> Result<Payload, Rejected> {
        parse_payload(value.to_string().as_bytes(), &self.ctx())
    }

    /// The events of a payload that must produce some.
    fn events(&self, value: Value) -> Vec<Inbound> {
        match self.parse(value) {
            Ok(Payload::Events(list)) => list,
            other => panic!("expected events, got {other:?}"),
        }
    }

    fn one(&self, value: Value) -> Inbound {
        let mut list = self.events(value);
        assert_eq!(list.len(), 1, "{list:?}");
        list.remove(0)
    }

    fn ignored(&self, value: Value) -> IgnoreReason {
        match self.parse(value) {
            Ok(Payload::Ignored(reason)) => reason,
            other => panic!("expected ignored, got {other:?}"),
        }
    }
}

/// An `event_callback` wrapper around `event`.
fn wrap(event: Value) -> Value {
    json!({
        "type": "event_callback", "team_id": "T1", "api_app_id": "AOURS",
        "event_id": "Ev1", "event_time": 1_700_000_000, "event": event,
    })
}

fn user_message(text: &str) -> Value {
    json!({
        "type": "message", "channel": "C1", "user": "U1", "text": text,
        "ts": "1700000000.000100", "event_ts": "1700000000.000100",
    })
}

fn message(inbound: &Inbound) -> &Message {
    match &inbound.kind {
        InboundKind::Message { message, .. } | InboundKind::Edit { message, .. } => message,
        other => panic!("expected a message, got {other:?}"),
    }
}

#[test]
fn a_user_message_maps_every_id() {
    let fx = Fixture::new();
    let ev = fx.one(wrap(user_message("hello")));
    assert_eq!(ev.origin, Origin::new("slack:acme", "C1"));
    assert_eq!(ev.event, EventId::new("Ev1"));
    assert_eq!(ev.at, Timestamp(1_700_000_000_000));
    assert_eq!(ev.sender.person.user.as_str(), "U1");
    assert_eq!(ev.sender.person.display_name, "Ada");
    assert!(!ev.sender.is_ours && !ev.sender.person.is_bot);
    let InboundKind::Message { id, message } = &ev.kind else {
        panic!("{:?}", ev.kind)
    };
    assert_eq!(id, &MessageId::new("1700000000.000100"));
    assert_eq!(message.body.to_plain(), "hello");
    assert_eq!(message.thread_root, None);
    assert_eq!(message.style, MessageStyle::Normal);
}

#[test]
fn inline_user_profile_names_the_sender() {
    let fx = Fixture::new();
    let mut ev = user_message("hi");
    ev["user"] = json!("U2");
    ev["user_profile"] =
        json!({"display_name": "", "real_name": "Grace H", "image_72": "https://img/72"});
    let ev = fx.one(wrap(ev));
    assert_eq!(ev.sender.person.display_name, "Grace H");
    assert_eq!(ev.sender.person.avatar.as_deref(), Some("https://img/72"));
    // Unknown everywhere: the id, which the connector later resolves.
    let mut bare = user_message("hi");
    bare["user"] = json!("U3");
    assert_eq!(fx.one(wrap(bare)).sender.person.display_name, "U3");
}

#[test]
fn threads_are_placed_by_thread_ts() {
    let fx = Fixture::new();
    let mut reply = user_message("in thread");
    reply["thread_ts"] = json!("1699999999.000001");
    let ev = fx.one(wrap(reply));
    assert_eq!(
        message(&ev).thread_root,
        Some(MessageId::new("1699999999.000001"))
    );
    // The parent carries thread_ts == ts: not a reply.
    let mut parent = user_message("parent");
    parent["thread_ts"] = json!("1700000000.000100");
    assert_eq!(message(&fx.one(wrap(parent))).thread_root, None);
}

#[test]
fn echoes_of_ours_are_recognised_four_ways() {
    let fx = Fixture::new();
    let cases = [
        json!({"bot_id": "BOURS", "username": "Ada (Teams)"}),
        json!({"bot_id": "BOTHER", "app_id": "AOURS"}),
        json!({"bot_id": "BOTHER", "bot_profile": {"app_id": "AOURS", "name": "x"}}),
        json!({"user": "UOURBOT"}),
        json!({"user": "ULINKED", "metadata": {"event_type": DEFAULT_RELAY_MARKER, "event_payload": {}}}),
    ];
    for extra in cases {
        let mut ev = json!({"type": "message", "channel": "C1", "text": "x", "ts": "1.000001"});
        for (k, v) in extra.as_object().expect("object") {
            ev[k] = v.clone();
        }
        assert!(fx.one(ev.clone()).sender.is_ours, "{ev}");
    }
    let mut other = user_message("x");
    other["metadata"] = json!({"event_type": "someone_else"});
    assert!(!fx.one(other).sender.is_ours);
    // An empty id of ours never matches an empty id of theirs.
    let bridge = BridgeId::new("slack:x");
    let ctx = ParseContext {
        our_bot_id: Some(""),
        ..ParseContext::new(&bridge, &crate::names::NoNames)
    };
    let ev = json!({"type":"message","channel":"C1","user":"U1","bot_id":"","text":"x","ts":"1.1"});
    let Ok(Payload::Events(list)) = parse_value(&ev, &ctx) else {
        panic!("a message")
    };
    assert!(!list[0].sender.is_ours);
}

#[test]
fn bot_messages_use_their_override_and_are_notices() {
    let fx = Fixture::new();
    let ev = fx.one(json!({
        "type": "message", "subtype": "bot_message", "channel": "C1", "ts": "1.000001",
        "bot_id": "B9", "username": "deploy-bot", "text": "shipped",
        "icons": {"image_48": "https://icon/48", "image_72": "https://icon/72"},
    }));
    let person = &ev.sender.person;
    assert_eq!(person.user.as_str(), "B9");
    assert_eq!(person.display_name, "deploy-bot");
    assert_eq!(person.avatar.as_deref(), Some("https://icon/72"));
    assert!(person.is_bot);
    assert_eq!(message(&ev).style, MessageStyle::Notice);
}

#[test]
fn me_message_is_an_emote() {
    let fx = Fixture::new();
    let mut ev = user_message("waves");
    ev["subtype"] = json!("me_message");
    assert_eq!(message(&fx.one(ev)).style, MessageStyle::Emote);
}

#[test]
fn files_become_attachments() {
    let fx = Fixture::new();
    let mut ev = user_message("");
    ev["subtype"] = json!("file_share");
    ev["files"] = json!([
        {"id": "F1", "name": "a.png", "mimetype": "image/png", "size": 10,
         "url_private": "https://files/a.png", "url_private_download": "https://files/dl/a.png"},
        {"id": "F2", "title": "Notes", "url_private": "https://files/notes"},
        {"id": "F3", "mode": "tombstone"},
        {"id": "F4", "file_access": "check_file_info"},
        {"name": "no id"},
    ]);
    let ev = fx.one(ev);
    let attachments = &message(&ev).attachments;
    let summary: Vec<_> = attachments
        .iter()
        .map(|a| {
            (
                a.id.as_str(),
                a.name.as_str(),
                a.mime.as_str(),
                a.size,
                a.url.as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "F1",
                "a.png",
                "image/png",
                Some(10),
                "https://files/dl/a.png"
            ),
            (
                "F2",
                "Notes",
                "application/octet-stream",
                None,
                "https://files/notes"
            ),
            (
                "F4",
                "F4",
                "application/octet-stream",
                None,
                "files.info:F4"
            ),
        ]
    );
}

#[test]
fn empty_and_hidden_and_unsupported_messages_are_ignored_by_name() {
    let fx = Fixture::new();
    assert_eq!(fx.ignored(user_message("")), IgnoreReason::EmptyMessage);
    let mut replied = user_message("x");
    replied["subtype"] = json!("message_replied");
    replied["hidden"] = json!(true);
    assert_eq!(
        fx.ignored(replied),
        IgnoreReason::Hidden("message_replied".into())
    );
    let mut archive = user_message("x");
    archive["subtype"] = json!("channel_archive");
    assert_eq!(
        fx.ignored(archive),
        IgnoreReason::UnsupportedSubtype("channel_archive".into())
    );
}

fn changed(message: Value, previous: Option<Value>) -> Value {
    let mut ev = json!({
        "type": "message", "subtype": "message_changed", "hidden": true, "channel": "C1",
        "ts": "1700000100.000200", "event_ts": "1700000100.000200", "message": message,
    });
    if let Some(p) = previous {
        ev["previous_message"] = p;
    }
    wrap(ev)
}

#[test]
fn message_changed_is_an_edit_of_message_ts() {
    let fx = Fixture::new();
    let new = json!({"type": "message", "user": "U1", "text": "new", "ts": "1700000000.000100",
                     "edited": {"user": "U1", "ts": "1700000100.000000"}});
    let old = json!({"type": "message", "user": "U1", "text": "old", "ts": "1700000000.000100"});
    let ev = fx.one(changed(new.clone(), Some(old)));
    let InboundKind::Edit { target, message } = &ev.kind else {
        panic!("{:?}", ev.kind)
    };
    assert_eq!(target, &MessageId::new("1700000000.000100"));
    assert_eq!(message.body.to_plain(), "new");
    assert_eq!(ev.at, Timestamp(1_700_000_100_000));
    // Without previous_message we cannot tell: an edit.
    assert!(matches!(
        fx.one(changed(new, None)).kind,
        InboundKind::Edit { .. }
    ));
}

#[test]
fn unfurls_and_metadata_updates_are_unchanged() {
    let fx = Fixture::new();
    let blocks = |id: &str| json!([{"type": "rich_text", "block_id": id, "elements": []}]);
    let old = json!({"type": "message", "user": "U1", "text": "see <https://x.y>",
                     "ts": "1.000001", "blocks": blocks("aaa")});
    let mut new = old.clone();
    new["attachments"] = json!([{"from_url": "https://x.y", "title": "X"}]);
    new["blocks"] = blocks("bbb");
    assert_eq!(
        fx.ignored(changed(new.clone(), Some(old.clone()))),
        IgnoreReason::Unchanged
    );
    new["text"] = json!("see <https://x.y> now");
    assert!(matches!(
        fx.one(changed(new, Some(old))).kind,
        InboundKind::Edit { .. }
    ));
}

#[test]
fn tombstones_and_message_deleted_are_deletes() {
    let fx = Fixture::new();
    let tomb = json!({"type": "message", "subtype": "tombstone", "user": "USLACKBOT",
                      "text": "This message was deleted.", "ts": "1.000001", "thread_ts": "1.000001"});
    let prev = json!({"type": "message", "user": "U1", "text": "parent", "ts": "1.000001"});
    let ev = fx.one(changed(tomb, Some(prev)));
    assert_eq!(
        ev.kind,
        InboundKind::Delete {
            target: MessageId::new("1.000001")
        }
    );
    assert_eq!(ev.sender.person.user.as_str(), "U1");

    let ev = fx.one(wrap(json!({
        "type": "message", "subtype": "message_deleted", "hidden": true, "channel": "C1",
        "deleted_ts": "1.000001", "ts": "2.000001",
        "previous_message": {"type": "message", "bot_id": "BOURS", "text": "relayed", "ts": "1.000001"},
    })));
    assert_eq!(
        ev.kind,
        InboundKind::Delete {
            target: MessageId::new("1.000001")
        }
    );
    assert!(
        ev.sender.is_ours,
        "deleting our own relayed message is an echo"
    );
}

#[test]
fn reactions_on_messages_only() {
    let fx = Fixture::new();
    let reaction = |item: Value| {
        wrap(
            json!({"type": "reaction_added", "user": "U1", "reaction": "thumbsup",
                    "item": item, "event_ts": "3.000001"}),
        )
    };
    let ev = fx.one(reaction(
        json!({"type": "message", "channel": "C1", "ts": "1.000001"}),
    ));
    assert_eq!(
        ev.kind,
        InboundKind::Reaction {
            target: MessageId::new("1.000001"),
            key: crate::emoji::reaction_key("thumbsup"),
            added: true
        }
    );
    assert_eq!(ev.origin.channel.as_str(), "C1");
    assert_eq!(
        fx.ignored(reaction(json!({"type": "file", "file": "F1"}))),
        IgnoreReason::NotAMessageItem("file".into())
    );
    assert_eq!(
        fx.parse(reaction(json!({"type": "message", "channel": "C1"}))),
        Err(Rejected::MissingField("ts"))
    );
}

#[test]
fn membership_and_channel_info() {
    let fx = Fixture::new();
    let ev = fx.one(wrap(
        json!({"type": "member_left_channel", "user": "U1", "channel": "C1"}),
    ));
    assert!(matches!(
        &ev.kind,
        InboundKind::Member { person, change: MemberChange::Left } if person.display_name == "Ada"
    ));
    let mut join = user_message("<@U1> has joined the channel");
    join["subtype"] = json!("channel_join");
    assert!(matches!(
        fx.one(join).kind,
        InboundKind::Member {
            change: MemberChange::Joined,
            ..
        }
    ));
    let mut topic = user_message("set the topic");
    topic["subtype"] = json!("channel_topic");
    topic["topic"] = json!("Releases");
    assert_eq!(
        fx.one(topic).kind,
        InboundKind::ChannelInfo {
            name: None,
            topic: Some("Releases".into()),
            avatar: None
        }
    );
    let ev = fx.one(json!({"type": "channel_rename", "channel": {"id": "C1", "name": "ops"}}));
    assert_eq!(ev.event.as_str(), "C1:0:channel_rename:ops");
    assert_eq!(ev.sender.person.user.as_str(), "USLACKBOT");
}

#[test]
fn several_call_blocks_get_distinct_event_ids() {
    let fx = Fixture::new();
    let block = |id: &str| json!({"type": "call", "call_id": id});
    let mut ev = user_message("calls");
    ev["blocks"] = json!([block("R1"), {"type": "divider"}, block("R2")]);
    let list = fx.events(wrap(ev));
    let ids: Vec<_> = list.iter().map(|i| i.event.as_str()).collect();
    assert_eq!(ids, ["Ev1", "Ev1#1"]);
    let calls: Vec<_> = list
        .iter()
        .map(|i| match &i.kind {
            InboundKind::Call(c) => (c.call.as_str(), c.provider.clone(), c.state.clone()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        calls,
        [
            ("slack-call:R1", CallProvider::SlackCall, CallState::Started),
            ("slack-call:R2", CallProvider::SlackCall, CallState::Started)
        ]
    );
}

#[test]
fn huddle_state_follows_the_room() {
    let fx = Fixture::new();
    let huddle = |ended: bool| {
        json!({"type": "message", "subtype": "huddle_thread", "channel": "C1", "user": "USLACKBOT",
               "ts": "1.000001", "text": "",
               "room": {"id": "R1", "created_by": "U1", "date_start": 100,
                        "date_end": if ended { 160 } else { 0 }, "has_ended": ended,
                        "participants": if ended { json!([]) } else { json!(["U1"]) },
                        "participant_history": ["U1", "U2"]}})
    };
    let ev = fx.one(huddle(false));
    let InboundKind::Call(call) = &ev.kind else {
        panic!("{:?}", ev.kind)
    };
    assert_eq!(call.state, CallState::Started);
    assert_eq!(call.participants.len(), 1);
    assert_eq!(
        call.started_by.as_ref().map(|p| p.display_name.as_str()),
        Some("Ada")
    );
    let ev = fx.one(changed(huddle(true), Some(huddle(false))));
    let InboundKind::Call(call) = &ev.kind else {
        panic!("{:?}", ev.kind)
    };
    assert_eq!(
        call.state,
        CallState::Ended {
            duration: Some(std::time::Duration::from_secs(60))
        }
    );
    assert_eq!(call.participants.len(), 2, "everyone who was in it");
}

#[test]
fn other_teams_are_ignored_when_the_team_is_known() {
    let fx = Fixture::new();
    let mut payload = wrap(user_message("x"));
    payload["team_id"] = json!("T2");
    assert_eq!(
        fx.ignored(payload.clone()),
        IgnoreReason::OtherTeam("T2".into())
    );
    payload["authorizations"] = json!([{"team_id": "T1", "user_id": "UOURBOT", "is_bot": true}]);
    assert!(matches!(fx.parse(payload), Ok(Payload::Events(_))));
}

#[test]
fn control_payloads() {
    let fx = Fixture::new();
    assert_eq!(
        fx.parse(json!({"type": "url_verification", "challenge": "abc", "token": "t"})),
        Ok(Payload::UrlVerification {
            challenge: "abc".into()
        })
    );
    assert_eq!(
        fx.parse(json!({"type": "app_rate_limited", "minute_rate_limited": 1_518_467_820})),
        Ok(Payload::AppRateLimited {
            minute: 1_518_467_820
        })
    );
    assert_eq!(
        fx.parse(json!({"type": "url_verification"})),
        Err(Rejected::MissingField("challenge"))
    );
}

#[test]
fn rejections_are_named() {
    let fx = Fixture::new();
    let ctx = fx.ctx();
    assert!(matches!(
        parse_payload(b"{nope", &ctx),
        Err(Rejected::InvalidJson(_))
    ));
    assert_eq!(parse_payload(b"[1]", &ctx), Err(Rejected::NotAnObject));
    assert_eq!(
        parse_payload(b"{}", &ctx),
        Err(Rejected::MissingField("type"))
    );
    assert_eq!(
        parse_payload(br#"{"type":7}"#, &ctx),
        Err(Rejected::WrongType {
            field: "type",
            expected: "a string"
        })
    );
    assert_eq!(
        fx.parse(json!({"type": "event_callback", "event": []})),
        Err(Rejected::WrongType {
            field: "event",
            expected: "an object"
        })
    );
    assert_eq!(
        fx.parse(json!({"type": "message", "text": "x", "ts": "1.1", "user": "U1"})),
        Err(Rejected::MissingField("channel"))
    );
    assert_eq!(
        Rejected::MissingField("ts").to_string(),
        "missing field \"ts\""
    );
    assert_eq!(
        IgnoreReason::NotRelayed("user_change".into()).to_string(),
        "event type \"user_change\" is not relayed"
    );
}

#[test]
fn bare_events_get_derived_ids() {
    let fx = Fixture::new();
    let ev = fx.one(user_message("legacy"));
    assert_eq!(ev.event.as_str(), "C1:1700000000.000100:message");
    let ev = fx.one(json!({"type": "member_joined_channel", "user": "U1", "channel": "C1"}));
    assert_eq!(ev.event.as_str(), "C1:0:member_joined_channel:U1");
}

#[test]
fn history_messages_get_their_channel() {
    let fx = Fixture::new();
    let msg = json!({"user": "U1", "text": "old news", "ts": "5.000001"});
    let Ok(Payload::Events(list)) = parse_history_message("C9", &msg, &fx.ctx()) else {
        panic!("a message")
    };
    assert_eq!(list[0].origin.channel.as_str(), "C9");
    assert_eq!(list[0].event.as_str(), "C9:5.000001:message");
}

#[test]
fn socket_frames() {
    assert_eq!(
        parse_socket_frame(r#"{"type":"hello","num_connections":1,"debug_info":{}}"#),
        Ok(SocketFrame::Hello {
            num_connections: Some(1)
        })
    );
    assert_eq!(
        parse_socket_frame(r#"{"type":"disconnect"}"#),
        Ok(SocketFrame::Disconnect {
            reason: "unknown".into()
        })
    );
    assert_eq!(
        parse_socket_frame(r#"{"type":"ping"}"#),
        Ok(SocketFrame::Unknown("ping".into()))
    );
    let frame = parse_socket_frame(
        r#"{"envelope_id":"e1","type":"events_api","retry_attempt":2,"retry_reason":"timeout",
            "accepts_response_payload":false,"payload":{"type":"url_verification","challenge":"c","token":"SECRET"}}"#,
    )
    .expect("an envelope");
    let SocketFrame::Envelope {
        envelope_id,
        retry_attempt,
        retry_reason,
        payload,
        ..
    } = &frame
    else {
        panic!("{frame:?}")
    };
    assert_eq!(
        (
            envelope_id.as_str(),
            *retry_attempt,
            retry_reason.as_deref()
        ),
        ("e1", 2, Some("timeout"))
    );
    let fx = Fixture::new();
    assert_eq!(
        parse_payload(payload, &fx.ctx()),
        Ok(Payload::UrlVerification {
            challenge: "c".into()
        })
    );
    // Debug never shows the payload (message bodies, the verification token).
    assert!(!format!("{frame:?}").contains("SECRET"));
    assert_eq!(
        parse_socket_frame(r#"{"envelope_id":"e1","type":"events_api"}"#),
        Err(Rejected::MissingField("payload"))
    );
    assert_eq!(
        parse_socket_frame(r#"{"envelope_id":"e1"}"#),
        Err(Rejected::MissingField("type"))
    );
}

// ---------------------------------------------------------------------------
// Never panic.

/// Arbitrary JSON values.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// JSON shaped like Slack payloads: known keys and values, nested, so the
/// deep paths (subtypes, rooms, call blocks, files) are reached.
fn slackish_json() -> impl Strategy<Value = Value> {
    const KEYS: &[&str] = &[
        "type",
        "subtype",
        "event",
        "message",
        "previous_message",
        "channel",
        "ts",
        "thread_ts",
        "event_ts",
        "deleted_ts",
        "user",
        "bot_id",
        "app_id",
        "text",
        "blocks",
        "files",
        "room",
        "call",
        "v1",
        "item",
        "reaction",
        "id",
        "name",
        "has_ended",
        "date_start",
        "date_end",
        "participants",
        "participant_history",
        "metadata",
        "event_type",
        "attachments",
        "is_share",
        "envelope_id",
        "payload",
        "challenge",
        "minute_rate_limited",
        "team_id",
        "authorizations",
        "call_id",
        "created_by",
        "active_participants",
        "all_participants",
        "slack_id",
        "external_id",
        "hidden",
        "topic",
        "purpose",
        "mode",
        "url_private",
        "size",
        "username",
        "icons",
        "bot_profile",
        "user_profile",
        "elements",
        "event_id",
        "event_time",
    ];
    const STRINGS: &[&str] = &[
        "message",
        "event_callback",
        "url_verification",
        "app_rate_limited",
        "message_changed",
        "message_deleted",
        "tombstone",
        "huddle_thread",
        "bot_message",
        "me_message",
        "file_share",
        "thread_broadcast",
        "channel_join",
        "channel_topic",
        "reaction_added",
        "reaction_removed",
        "member_joined_channel",
        "channel_rename",
        "call",
        "rich_text",
        "rich_text_section",
        "text",
        "user",
        "C1",
        "U1",
        "R1",
        "F1",
        "1.000001",
        "1.",
        "99999999999999999999.9",
        "",
        "switchboard_relay",
        "in_a_huddle",
        "user_huddle_changed",
    ];
    let leaf = prop_oneof![
        3 => prop::sample::select(STRINGS).prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<bool>().prop_map(Value::from),
        1 => Just(Value::Null),
        1 => ".{0,6}".prop_map(Value::from),
    ];
    leaf.prop_recursive(6, 96, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(prop::sample::select(KEYS), inner, 0..8).prop_map(|m| {
                Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let fx = Fixture::new();
        let _ = parse_payload(&bytes, &fx.ctx());
        let _ = parse_socket_frame(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn arbitrary_json_never_panics(value in any_json()) {
        let fx = Fixture::new();
        let _ = parse_value(&value, &fx.ctx());
        let _ = parse_history_message("C1", &value, &fx.ctx());
        let _ = parse_socket_frame(&value.to_string());
    }

    #[test]
    fn slack_shaped_json_never_panics(value in slackish_json(), inner in slackish_json()) {
        let fx = Fixture::new();
        let _ = parse_value(&value, &fx.ctx());
        // The same value as an inner event, a changed message and a payload.
        let _ = parse_value(&wrap(value.clone()), &fx.ctx());
        let _ = parse_value(&changed(value.clone(), Some(inner.clone())), &fx.ctx());
        let frame = json!({"type": "events_api", "envelope_id": "e", "payload": inner});
        if let Ok(SocketFrame::Envelope { payload, .. }) = parse_socket_frame(&frame.to_string()) {
            let _ = parse_payload(&payload, &fx.ctx());
        }
    }
}
