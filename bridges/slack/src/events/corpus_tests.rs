//! The conformance corpus: every Slack event payload under
//! `$SWITCHBOARD_CONFORMANCE_DIR/slack/events` and `…/slack/calls` parses
//! into canonical events or is ignored/rejected for a named reason, and that
//! outcome is the one decided for the file in [`EXPECTED`]. The important
//! files are also checked field by field.
//!
//! Variable unset: the tests print a note and pass. Set but the folder is
//! missing: they fail.

use super::*;
use crate::names::StaticNames;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use switchboard_model::{
    Attachment, CallEvent, CallProvider, CallState, Inline, MemberChange, Message, MessageId,
    MessageStyle, RichText,
};

/// The decided outcome of every case in the corpus. A case is a file, or a
/// part of one (`#messages[n]` of an API response, `[n].event` of a list of
/// envelopes, `#payload` of a Socket Mode envelope, `#in_message` for a bare
/// block placed in a message). Labels: event kinds joined by `+`,
/// `ignored:<reason>[:<detail>]`, `rejected:<reason>[:<field>]`,
/// `frame:<type>[:<detail>]`.
#[rustfmt::skip] // One case per line reads as a table.
const EXPECTED: &[(&str, &str)] = &[
    // Wrappers.
    ("events/envelope/app_rate_limited.java-sdk-test.json", "app_rate_limited"),
    // The docs' placeholder event type inside a valid wrapper.
    ("events/envelope/event_callback.docs-authorizations-variant.json", "ignored:unknown_event_type:name_of_event"),
    ("events/envelope/event_callback.docs-event-object.json", "ignored:unknown_event_type:name_of_event"),
    ("events/envelope/event_callback.real-capture.message_rich_text.json", "message"),
    ("events/envelope/event_callback.slack-morphism.message_changed.json", "edit"),
    ("events/envelope/url_verification.bolt-python-test.json", "url_verification"),
    ("events/envelope/url_verification.docs.json", "url_verification"),
    // RTM-era docs: bare events; some lack the channel the Events API always sends.
    ("events/legacy-docs-2016/bot_message.0.json", "rejected:missing_field:channel"),
    ("events/legacy-docs-2016/channel_created.0.json", "ignored:not_relayed:channel_created"),
    ("events/legacy-docs-2016/channel_join.0.json", "rejected:missing_field:channel"),
    ("events/legacy-docs-2016/channel_rename.0.json", "channel_info"),
    // Doc snippets with "..." placeholders are not JSON.
    ("events/legacy-docs-2016/file_share.0.txt", "rejected:invalid_json"),
    ("events/legacy-docs-2016/file_shared.0.txt", "rejected:invalid_json"),
    ("events/legacy-docs-2016/hello.0.json", "ignored:not_relayed:hello"),
    ("events/legacy-docs-2016/me_message.0.json", "message"),
    ("events/legacy-docs-2016/message.0.json", "message"),
    ("events/legacy-docs-2016/message.1.json", "message"),
    ("events/legacy-docs-2016/message.2.json", "rejected:missing_field:channel"),
    ("events/legacy-docs-2016/message.3.json", "delete"),
    ("events/legacy-docs-2016/message.4.txt", "rejected:invalid_json"),
    ("events/legacy-docs-2016/message_changed.0.json", "edit"),
    ("events/legacy-docs-2016/message_deleted.0.json", "delete"),
    ("events/legacy-docs-2016/reaction_added.0.txt", "rejected:invalid_json"),
    ("events/legacy-docs-2016/reaction_removed.0.txt", "rejected:invalid_json"),
    ("events/legacy-docs-2016/user_change.0.txt", "rejected:invalid_json"),
    // Messages.
    ("events/message/blocks_rich_text.real-capture.json", "message"),
    // A bare block, not an event; placed in a message it is a message.
    ("events/message/blocks_rich_text.slack-morphism-block-fixture.json", "ignored:unknown_event_type:rich_text"),
    ("events/message/blocks_rich_text.slack-morphism-block-fixture.json#in_message", "message"),
    ("events/message/bot_message.bolt-python-test.bot_id_no_subtype.json", "message"),
    ("events/message/bot_message.bolt-python-test.classic_subtype.json", "message"),
    ("events/message/bot_message.java-sdk-test.json", "message"),
    ("events/message/bot_message.real-capture.app_bot_no_subtype.thread_reply.json", "message"),
    ("events/message/bot_message.real-capture.subtype.json", "message"),
    ("events/message/channel_join.java-sdk-test.json", "member:joined"),
    ("events/message/channel_join.real-capture.json", "member:joined"),
    ("events/message/file_share.bolt-python-test.json", "message"),
    ("events/message/file_share.java-sdk-test.json", "message"),
    ("events/message/file_share.real-capture.json", "message"),
    ("events/message/file_share.real-capture.slack_connect_stub_file.json", "message"),
    ("events/message/files_without_subtype.java-sdk-test.json", "message"),
    ("events/message/me_message.java-sdk-test.json", "message"),
    ("events/message/message_changed.bolt-python-test.json", "edit"),
    ("events/message/message_changed.docs.json", "edit"),
    ("events/message/message_changed.java-sdk-test.thread_parent_tombstone.json", "delete"),
    ("events/message/message_changed.java-sdk-test.tombstone.json", "delete"),
    ("events/message/message_changed.java-sdk-test.tombstone_with_replies.json", "delete"),
    ("events/message/message_changed.java-sdk-test.user_edit.json", "edit"),
    // Only an unfurl was added: text, files and blocks are as before.
    ("events/message/message_changed.real-capture.json", "ignored:unchanged"),
    ("events/message/message_changed.slack-morphism.by_bot.json", "edit"),
    ("events/message/message_changed.slack-morphism.json", "edit"),
    ("events/message/message_deleted.bolt-python-test.json", "delete"),
    ("events/message/message_deleted.java-sdk-test.json", "delete"),
    ("events/message/message_deleted.real-capture.json", "delete"),
    ("events/message/message_replied.docs.json", "ignored:hidden:message_replied"),
    ("events/message/ossans_navi.bot_message.json", "message"),
    ("events/message/ossans_navi.bot_message_file_share.json", "message"),
    ("events/message/ossans_navi.file_share_message.json", "message"),
    ("events/message/ossans_navi.file_share_message_changed.json", "edit"),
    ("events/message/ossans_navi.file_share_root_message_deleted.json", "delete"),
    ("events/message/ossans_navi.message.json", "message"),
    ("events/message/ossans_navi.message2.json", "message"),
    ("events/message/ossans_navi.message2_deleted.json", "delete"),
    ("events/message/ossans_navi.message_changed.json", "edit"),
    ("events/message/ossans_navi.message_in_thread.json", "message"),
    ("events/message/ossans_navi.message_in_thread_changed.json", "edit"),
    ("events/message/ossans_navi.message_in_thread_deleted.json", "delete"),
    ("events/message/ossans_navi.thread_root_message_deleted.json", "delete"),
    ("events/message/other.real-capture.email_message.json", "message"),
    ("events/message/other.real-capture.forwarded_message.json", "message"),
    ("events/message/other.real-capture.link.json", "message"),
    ("events/message/other.real-capture.share_with_message.json", "message"),
    ("events/message/other.real-capture.slackbotIm.json", "message"),
    ("events/message/plain.bolt-python-test.json", "message"),
    ("events/message/plain.docs.json", "message"),
    ("events/message/plain.java-sdk-test.channel_type_channel.json", "message"),
    ("events/message/plain.real-capture.channel.json", "message"),
    ("events/message/plain.real-capture.im.json", "message"),
    ("events/message/thread_broadcast.bolt-python-test.json", "message"),
    ("events/message/thread_reply.java-sdk-test.bot_message_in_thread.json", "message"),
    // A list of test envelopes (bolt's thread_ts extraction cases), each
    // parsed on its own; the fragments without text are empty messages.
    ("events/message/thread_ts_variants.bolt-python-test.json", "rejected:not_an_object"),
    ("events/message/thread_ts_variants.bolt-python-test.json[0].event", "ignored:not_relayed:app_mention"),
    ("events/message/thread_ts_variants.bolt-python-test.json[1].event", "ignored:empty_message"),
    ("events/message/thread_ts_variants.bolt-python-test.json[2].event", "ignored:empty_message"),
    ("events/message/thread_ts_variants.bolt-python-test.json[3].event", "ignored:empty_message"),
    ("events/message/thread_ts_variants.bolt-python-test.json[4].event", "ignored:empty_message"),
    ("events/message/thread_ts_variants.bolt-python-test.json[5].event", "ignored:not_relayed:link_shared"),
    ("events/message/thread_ts_variants.bolt-python-test.json[6].event", "edit"),
    ("events/message/thread_ts_variants.bolt-python-test.json[7].event", "edit"),
    ("events/message/thread_ts_variants.bolt-python-test.json[8].event", "delete"),
    ("events/message/thread_ts_variants.bolt-python-test.json[9].event", "ignored:not_relayed:assistant_thread_started"),
    ("events/message/thread_ts_variants.bolt-python-test.json[10].event", "ignored:not_relayed:assistant_thread_context_changed"),
    ("events/message/thread_ts_variants.bolt-python-test.json[11].event", "ignored:unsupported_subtype:assistant_app_thread"),
    // Other events.
    ("events/other/app_home_opened.real-capture.json", "ignored:not_relayed:app_home_opened"),
    ("events/other/channel_created.docs.json", "ignored:not_relayed:channel_created"),
    ("events/other/channel_created.java-sdk-test.full_channel_object.json", "ignored:not_relayed:channel_created"),
    ("events/other/channel_created.java-sdk-test.json", "ignored:not_relayed:channel_created"),
    ("events/other/channel_created.real-capture.json", "ignored:not_relayed:channel_created"),
    ("events/other/channel_left.real-capture.json", "ignored:not_relayed:channel_left"),
    ("events/other/channel_rename.docs.json", "channel_info"),
    ("events/other/channel_rename.java-sdk-test.json", "channel_info"),
    ("events/other/channel_shared.real-capture.json", "ignored:not_relayed:channel_shared"),
    ("events/other/file_shared.docs.json", "ignored:not_relayed:file_shared"),
    ("events/other/file_shared.java-sdk-test.json", "ignored:not_relayed:file_shared"),
    ("events/other/member_joined_channel.bolt-python-test.envelope.json", "member:joined"),
    ("events/other/member_joined_channel.bolt-python-test.shared_channel_envelope.json", "member:joined"),
    ("events/other/member_joined_channel.docs.json", "member:joined"),
    ("events/other/member_joined_channel.java-sdk-test.json", "member:joined"),
    ("events/other/member_left_channel.bolt-python-test.envelope.json", "member:left"),
    ("events/other/reaction_added.bolt-python-test.envelope.json", "reaction_added"),
    ("events/other/reaction_added.docs.json", "reaction_added"),
    ("events/other/reaction_added.java-sdk-test.json", "reaction_added"),
    ("events/other/reaction_removed.docs.json", "reaction_removed"),
    ("events/other/reaction_removed.java-sdk-test.json", "reaction_removed"),
    ("events/other/user_change.docs.json", "ignored:not_relayed:user_change"),
    // Field-coverage shape with blanked values (`"type": ""`).
    ("events/other/user_change.java-sdk-json-logs-shape.json", "rejected:missing_field:type"),
    // Socket Mode: client-to-Slack acks, a Web API response and a compiled
    // list are not frames Slack sends (no `type`).
    ("events/socket_mode/ack.minimal.json", "rejected:missing_field:type"),
    ("events/socket_mode/ack.python-sdk-test.with_payload.json", "rejected:missing_field:type"),
    ("events/socket_mode/apps.connections.open.docs.json", "rejected:missing_field:type"),
    ("events/socket_mode/disconnect.reasons.json", "rejected:missing_field:type"),
    ("events/socket_mode/disconnect.reasons.json#example_frames[0]", "frame:disconnect:too_many_websockets"),
    ("events/socket_mode/disconnect.refresh_requested.node-sdk-test.json", "frame:disconnect:refresh_requested"),
    ("events/socket_mode/disconnect.too_many_websockets.node-sdk-test.json", "frame:disconnect:too_many_websockets"),
    ("events/socket_mode/disconnect.too_many_websockets.python-sdk-test.json", "frame:disconnect:too_many_websockets"),
    ("events/socket_mode/disconnect.warning.node-sdk-test.json", "frame:disconnect:warning"),
    ("events/socket_mode/envelope.events_api.app_mention.java-sdk-test.json", "frame:envelope:events_api"),
    ("events/socket_mode/envelope.events_api.app_mention.java-sdk-test.json#payload", "ignored:not_relayed:app_mention"),
    ("events/socket_mode/envelope.events_api.app_mention.python-sdk-test.json", "frame:envelope:events_api"),
    ("events/socket_mode/envelope.events_api.app_mention.python-sdk-test.json#payload", "ignored:not_relayed:app_mention"),
    ("events/socket_mode/envelope.events_api.message.python-sdk-test.json", "frame:envelope:events_api"),
    ("events/socket_mode/envelope.events_api.message.python-sdk-test.json#payload", "message"),
    ("events/socket_mode/envelope.interactive.block_actions.java-sdk-test.json", "frame:envelope:interactive"),
    ("events/socket_mode/envelope.interactive.shortcut.python-sdk-test.json", "frame:envelope:interactive"),
    ("events/socket_mode/envelope.slash_commands.java-sdk-test.json", "frame:envelope:slash_commands"),
    ("events/socket_mode/envelope.slash_commands.python-sdk-test.json", "frame:envelope:slash_commands"),
    ("events/socket_mode/hello.java-sdk-test.json", "frame:hello"),
    ("events/socket_mode/hello.python-sdk-test.json", "frame:hello"),
    // Calls: blocks and API responses are not payloads; their parts are.
    ("calls/call_block.docs.post_with_chat.postMessage.json", "rejected:missing_field:type"),
    ("calls/call_block.docs.post_with_chat.postMessage.json#in_message", "call:started"),
    ("calls/call_block.expanded.java-sdk-test.json", "ignored:unknown_event_type:call"),
    ("calls/call_block.expanded.java-sdk-test.json#in_message", "call:started"),
    ("calls/call_block.expanded.python-sdk-test.json", "ignored:unknown_event_type:call"),
    ("calls/call_block.expanded.python-sdk-test.json#in_message", "call:started"),
    ("calls/call_rejected.event.java-sdk-test.json", "ignored:not_relayed:call_rejected"),
    ("calls/calls.add.docs.json", "rejected:missing_field:type"),
    ("calls/calls.end.docs.json", "rejected:missing_field:type"),
    ("calls/calls.info.docs.json", "rejected:missing_field:type"),
    ("calls/calls.participants.add.docs.json", "rejected:missing_field:type"),
    ("calls/calls.participants.remove.docs.json", "rejected:missing_field:type"),
    ("calls/calls.update.docs.json", "rejected:missing_field:type"),
    ("calls/huddle_thread.conversations.replies.ossans_navi-test.json", "rejected:missing_field:type"),
    ("calls/huddle_thread.conversations.replies.ossans_navi-test.json#messages[0]", "call:ended"),
    ("calls/huddle_thread.conversations.replies.ossans_navi-test.json#messages[1]", "message"),
    ("calls/huddle_thread.conversations.replies.ossans_navi-test.json#messages[2]", "message"),
    ("calls/huddle_thread.conversations.replies.ossans_navi-test.json#messages[3]", "message"),
    ("calls/huddle_thread.conversations.replies.ossans_navi-test.json#messages[4]", "message"),
    ("calls/huddle_thread.message.docs-conversation-object.json", "rejected:missing_field:type"),
    ("calls/huddle_thread.message.docs-conversation-object.json#messages[0]", "call:started"),
    ("calls/shapes.java-sdk-json-logs.json", "rejected:missing_field:type"),
    ("calls/user_huddle_changed.envelope-shape.java-sdk-json-logs.json", "rejected:missing_field:type"),
    ("calls/user_huddle_changed.event.docs.json", "ignored:no_channel:user_huddle_changed"),
    ("calls/user_huddle_changed.event.java-sdk-test.json", "ignored:no_channel:user_huddle_changed"),
];

/// The corpus's `slack` folder, or None (with a note) when the variable is unset.
fn slack_dir() -> Option<PathBuf> {
    let Some(root) = std::env::var_os("SWITCHBOARD_CONFORMANCE_DIR") else {
        println!("note: SWITCHBOARD_CONFORMANCE_DIR is unset; skipping the Slack event corpus");
        return None;
    };
    let dir = PathBuf::from(root).join("slack");
    assert!(
        dir.join("events").is_dir() && dir.join("calls").is_dir(),
        "SWITCHBOARD_CONFORMANCE_DIR is set but {} lacks events/ or calls/",
        dir.display()
    );
    Some(dir)
}

/// Every file under `dir`, recursively, sorted.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("readable corpus folder") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The installation the corpus is parsed for: the test app of the
/// MercuryTechnologies real captures (bot user U0442US8QGH, bot
/// B0439P161B9, app A0442TUPHGR), with one known user and channel name.
struct Fixture {
    bridge: BridgeId,
    names: StaticNames,
}

impl Fixture {
    fn new() -> Self {
        Fixture {
            bridge: BridgeId::new("slack:corpus"),
            names: StaticNames {
                users: vec![("U043H11ES4V".into(), "jadel".into())],
                channels: vec![("C043YJGBY49".into(), "general".into())],
            },
        }
    }

    fn ctx(&self) -> ParseContext<'_> {
        ParseContext {
            our_bot_id: Some("B0439P161B9"),
            our_app_id: Some("A0442TUPHGR"),
            our_bot_user: Some("U0442US8QGH"),
            ..ParseContext::new(&self.bridge, &self.names)
        }
    }
}

/// One parsed case.
struct Case {
    name: String,
    label: String,
    /// The payload outcome (None for Socket Mode frames themselves).
    result: Option<Result<Payload, Rejected>>,
}

impl Case {
    fn of(name: String, result: Result<Payload, Rejected>) -> Self {
        Case {
            name,
            label: label(&result),
            result: Some(result),
        }
    }
}

/// A short, stable description of an outcome.
fn label(result: &Result<Payload, Rejected>) -> String {
    match result {
        Ok(Payload::UrlVerification { .. }) => "url_verification".into(),
        Ok(Payload::AppRateLimited { .. }) => "app_rate_limited".into(),
        Ok(Payload::Events(list)) => list
            .iter()
            .map(|i| kind_label(&i.kind))
            .collect::<Vec<_>>()
            .join("+"),
        Ok(Payload::Ignored(reason)) => match reason {
            IgnoreReason::UnknownEventType(d)
            | IgnoreReason::NotRelayed(d)
            | IgnoreReason::UnsupportedSubtype(d)
            | IgnoreReason::Hidden(d)
            | IgnoreReason::NotAMessageItem(d)
            | IgnoreReason::OtherTeam(d)
            | IgnoreReason::NoChannel(d) => format!("ignored:{}:{d}", reason.label()),
            IgnoreReason::Unchanged | IgnoreReason::EmptyMessage => {
                format!("ignored:{}", reason.label())
            }
        },
        Err(r @ (Rejected::MissingField(f) | Rejected::WrongType { field: f, .. })) => {
            format!("rejected:{}:{f}", r.label())
        }
        Err(r) => format!("rejected:{}", r.label()),
    }
}

fn kind_label(kind: &InboundKind) -> String {
    match kind {
        InboundKind::Reaction { added: true, .. } => "reaction_added".into(),
        InboundKind::Reaction { added: false, .. } => "reaction_removed".into(),
        InboundKind::Call(call) => match call.state {
            CallState::Started => "call:started".into(),
            CallState::Updated => "call:updated".into(),
            CallState::Ended { .. } => "call:ended".into(),
        },
        InboundKind::Member { change, .. } => match change {
            MemberChange::Joined => "member:joined".into(),
            MemberChange::Left => "member:left".into(),
        },
        other => other.label().into(),
    }
}

/// Parses one corpus file the way the daemon would meet it, plus the cases
/// it holds.
fn cases_of(fx: &Fixture, rel: &str, bytes: &[u8]) -> Vec<Case> {
    if rel.starts_with("events/socket_mode/") {
        return socket_cases(fx, rel, bytes);
    }
    let ctx = fx.ctx();
    let mut out = vec![Case::of(rel.to_owned(), parse_payload(bytes, &ctx))];
    let Ok(value) = serde_json::from_slice::<Value>(bytes) else {
        return out;
    };
    // A list of envelopes: each inner event on its own.
    for (n, case) in value.as_array().into_iter().flatten().enumerate() {
        let event = case.get("event").unwrap_or(case);
        out.push(Case::of(
            format!("{rel}[{n}].event"),
            parse_value(event, &ctx),
        ));
    }
    // A conversations.history/replies response: catch-up of its messages.
    let messages = value.get("messages").and_then(Value::as_array);
    for (n, msg) in messages.into_iter().flatten().enumerate() {
        let channel = msg
            .get("channel")
            .and_then(Value::as_str)
            .unwrap_or("C_HISTORY");
        let parsed = parse_history_message(channel, msg, &ctx);
        out.push(Case::of(format!("{rel}#messages[{n}]"), parsed));
    }
    // A bare block: placed in a message from some app.
    let is_block =
        ["rich_text", "call"].contains(&value.get("type").and_then(Value::as_str).unwrap_or(""));
    if is_block || rel.starts_with("calls/call_block") {
        let blocks = value
            .get("blocks")
            .cloned()
            .unwrap_or_else(|| Value::Array(vec![value.clone()]));
        let msg = block_message(blocks);
        out.push(Case::of(
            format!("{rel}#in_message"),
            parse_value(&msg, &ctx),
        ));
    }
    out
}

/// A message event from another app carrying `blocks`.
fn block_message(blocks: Value) -> Value {
    serde_json::json!({
        "type": "message", "channel": "C_BLOCKS", "ts": "1596711312.000100",
        "bot_id": "B_OTHER", "app_id": "A_OTHER", "text": "fallback text", "blocks": blocks,
    })
}

/// Socket Mode files are frames (plus the example frames of the compiled
/// disconnect list); an `events_api` envelope's payload is then parsed as
/// an Events API payload.
fn socket_cases(fx: &Fixture, rel: &str, bytes: &[u8]) -> Vec<Case> {
    let text = String::from_utf8_lossy(bytes).into_owned();
    let mut frames = vec![(rel.to_owned(), text.clone())];
    if let Ok(value) = serde_json::from_str::<Value>(&text) {
        let examples = value.get("example_frames").and_then(Value::as_array);
        for (n, frame) in examples.into_iter().flatten().enumerate() {
            frames.push((format!("{rel}#example_frames[{n}]"), frame.to_string()));
        }
    }
    let mut out = Vec::new();
    for (name, frame) in frames {
        let (label, payload) = frame_label(fx, &frame);
        out.push(Case {
            name: name.clone(),
            label,
            result: None,
        });
        if let Some(parsed) = payload {
            out.push(Case::of(format!("{name}#payload"), parsed));
        }
    }
    out
}

/// A frame's label, and for `events_api` envelopes the parsed payload.
fn frame_label(fx: &Fixture, frame: &str) -> (String, Option<Result<Payload, Rejected>>) {
    match parse_socket_frame(frame) {
        Ok(SocketFrame::Hello { .. }) => ("frame:hello".to_owned(), None),
        Ok(SocketFrame::Disconnect { reason }) => (format!("frame:disconnect:{reason}"), None),
        Ok(SocketFrame::Envelope { kind, payload, .. }) => {
            let parsed = (kind == "events_api").then(|| parse_payload(&payload, &fx.ctx()));
            (format!("frame:envelope:{kind}"), parsed)
        }
        Ok(SocketFrame::Unknown(kind)) => (format!("frame:unknown:{kind}"), None),
        Err(e) => (label(&Err(e)), None),
    }
}

/// Parses the whole corpus.
fn corpus(slack: &Path, fx: &Fixture) -> Vec<Case> {
    let mut all = Vec::new();
    for sub in ["events", "calls"] {
        for path in files_under(&slack.join(sub)) {
            let rel = path
                .strip_prefix(slack)
                .expect("under the corpus")
                .to_string_lossy()
                .replace('\\', "/");
            let bytes = std::fs::read(&path).expect("readable corpus file");
            all.extend(cases_of(fx, &rel, &bytes));
        }
    }
    all
}

/// Counts per outcome: events by kind, ignored by reason, rejected by reason.
fn print_counts(cases: &[Case]) {
    let mut counts: BTreeMap<(&str, String), usize> = BTreeMap::new();
    for case in cases {
        let (group, key) = match &case.result {
            None => ("frames", case.label.clone()),
            Some(Ok(Payload::Events(list))) => {
                for i in list {
                    *counts.entry(("events", kind_label(&i.kind))).or_default() += 1;
                }
                continue;
            }
            Some(Ok(Payload::Ignored(r))) => ("ignored", r.label().to_owned()),
            Some(Err(r)) => ("rejected", r.label().to_owned()),
            Some(Ok(_)) => ("control", case.label.clone()),
        };
        *counts.entry((group, key)).or_default() += 1;
    }
    println!("Slack corpus: {} cases", cases.len());
    for ((group, key), n) in &counts {
        println!("  {group:9} {key:32} {n}");
    }
}

#[test]
fn corpus_every_case_has_its_decided_outcome() {
    let Some(slack) = slack_dir() else { return };
    let fx = Fixture::new();
    let cases = corpus(&slack, &fx);
    print_counts(&cases);
    let expected: BTreeMap<&str, &str> = EXPECTED.iter().copied().collect();
    let mut wrong = Vec::new();
    for case in &cases {
        match expected.get(case.name.as_str()) {
            Some(want) if *want == case.label => {}
            Some(want) => wrong.push(format!("{}: got {}, decided {want}", case.name, case.label)),
            // A new file: fine if it parses or is ignored for a known reason,
            // an unexplained failure otherwise.
            None if case.label.starts_with("rejected:")
                || case.label.starts_with("ignored:unknown_event_type") =>
            {
                wrong.push(format!(
                    "{}: {} (new file, no decision)",
                    case.name, case.label
                ));
            }
            None => println!("note: new corpus case {} -> {}", case.name, case.label),
        }
    }
    for name in expected.keys() {
        if !cases.iter().any(|c| c.name == *name) {
            println!("note: decided case {name} is not in the corpus");
        }
    }
    assert!(
        wrong.is_empty(),
        "unexpected outcomes:\n{}",
        wrong.join("\n")
    );
}

// ---------------------------------------------------------------------------
// Field-by-field checks of the important files.

/// Reads and parses one corpus file, or None when the corpus is not configured.
fn parse_file(rel: &str) -> Option<Result<Payload, Rejected>> {
    let slack = slack_dir()?;
    let bytes = std::fs::read(slack.join(rel)).expect("corpus file");
    Some(parse_payload(&bytes, &Fixture::new().ctx()))
}

/// The single event of a corpus file.
fn single(rel: &str) -> Option<Inbound> {
    match parse_file(rel)? {
        Ok(Payload::Events(mut list)) if list.len() == 1 => list.pop(),
        other => panic!("{rel}: expected one event, got {other:?}"),
    }
}

fn message_of(inbound: &Inbound) -> (&MessageId, &Message) {
    match &inbound.kind {
        InboundKind::Message { id, message } => (id, message),
        other => panic!("expected a message, got {other:?}"),
    }
}

fn call_of(inbound: &Inbound) -> &CallEvent {
    match &inbound.kind {
        InboundKind::Call(call) => call,
        other => panic!("expected a call, got {other:?}"),
    }
}

/// All inline elements of a body, depth first.
fn inlines(body: &RichText) -> Vec<Inline> {
    let mut all = Vec::new();
    body.clone()
        .for_each_inline_mut(&mut |i| all.push(i.clone()));
    all
}

#[test]
fn corpus_plain_message() {
    let Some(ev) = single("events/message/plain.real-capture.channel.json") else {
        return;
    };
    let (id, message) = message_of(&ev);
    assert_eq!(ev.origin, Origin::new("slack:corpus", "C043YJGBY49"));
    assert_eq!(ev.event, EventId::new("Ev043T7CKN84"));
    assert_eq!(id, &MessageId::new("1663966382.046509"));
    assert_eq!(ev.at, Timestamp(1_663_966_382_046));
    assert_eq!(ev.sender.person.user.as_str(), "U043H11ES4V");
    assert_eq!(ev.sender.person.display_name, "jadel");
    assert!(!ev.sender.person.is_bot && !ev.sender.is_ours);
    assert_eq!(message.body.to_plain(), "dgsfklsdgf");
    assert_eq!(message.style, MessageStyle::Normal);
    assert_eq!(message.thread_root, None);
    assert!(message.attachments.is_empty());
}

#[test]
fn corpus_rich_text_message_uses_the_blocks() {
    let Some(ev) = single("events/envelope/event_callback.real-capture.message_rich_text.json")
    else {
        return;
    };
    let (id, message) = message_of(&ev);
    assert_eq!(id, &MessageId::new("1670625739.704049"));
    assert_eq!(ev.event, EventId::new("Ev04EPCGMFLL"));
    let all = inlines(&message.body);
    let has = |f: &dyn Fn(&Inline) -> bool| all.iter().any(f);
    assert!(
        has(&|i| matches!(i, Inline::UserMention { user, name, .. }
            if user.as_str() == "U043H11ES4V" && name == "jadel")),
        "{all:?}"
    );
    assert!(
        has(&|i| matches!(i, Inline::ChannelMention { channel, .. }
            if channel.as_str() == "C043YJGBY49")),
        "{all:?}"
    );
    assert!(
        has(&|i| matches!(i, Inline::Link { url, .. } if url == "https://google.com")),
        "{all:?}"
    );
    assert!(
        has(&|i| matches!(i, Inline::Emoji { name, .. } if name == "cat")),
        "{all:?}"
    );
    assert!(message.body.to_plain().ends_with(" text text text"));
}

#[test]
fn corpus_thread_reply_and_broadcast() {
    let Some(ev) = single("events/message/ossans_navi.message_in_thread.json") else {
        return;
    };
    let (id, message) = message_of(&ev);
    assert_eq!(id, &MessageId::new("1736481285.683829"));
    assert_eq!(
        message.thread_root,
        Some(MessageId::new("1736207085.539649"))
    );
    // A bare event: the id is derived.
    assert_eq!(
        ev.event,
        EventId::new("C0000XXX0XX:1736481285.683829:message")
    );

    let Some(ev) = single("events/message/thread_broadcast.bolt-python-test.json") else {
        return;
    };
    let (id, message) = message_of(&ev);
    assert_eq!(id, &MessageId::new("1633670813.007500"));
    assert_eq!(
        message.thread_root,
        Some(MessageId::new("1633663824.000500"))
    );
    assert_eq!(message.body.to_plain(), "Hi there!");

    // Our own app's reply in a thread: ours, a bot, a notice.
    let Some(ev) =
        single("events/message/bot_message.real-capture.app_bot_no_subtype.thread_reply.json")
    else {
        return;
    };
    let (_, message) = message_of(&ev);
    assert!(ev.sender.is_ours && ev.sender.person.is_bot);
    assert_eq!(ev.sender.person.user.as_str(), "U0442US8QGH");
    assert_eq!(ev.sender.person.display_name, "Slacklinker dev");
    assert_eq!(
        message.thread_root,
        Some(MessageId::new("1664216109.798919"))
    );
    assert_eq!(message.style, MessageStyle::Notice);
}

#[test]
fn corpus_bot_message_with_username_override() {
    let Some(ev) = single("events/message/bot_message.real-capture.subtype.json") else {
        return;
    };
    let (id, message) = message_of(&ev);
    assert_eq!(id, &MessageId::new("1724955010.440469"));
    let person = &ev.sender.person;
    assert_eq!(person.user.as_str(), "B07JWPS5Y5S");
    assert_eq!(person.display_name, "Reacji Channeler");
    assert!(person.is_bot && !ev.sender.is_ours);
    assert_eq!(person.avatar, None, "icons.emoji is not an image");
    assert_eq!(message.style, MessageStyle::Notice);

    let Some(ev) = single("events/message/bot_message.java-sdk-test.json") else {
        return;
    };
    assert_eq!(ev.sender.person.display_name, "seanbot");
    assert_eq!(
        ev.sender.person.avatar.as_deref(),
        Some("https://a.slack-edge.com/37d58/img/emoji_2017_12_06/apple/1f604.png")
    );
    assert_eq!(message_of(&ev).1.body.to_plain(), "Let's make a pact.");
}

#[test]
fn corpus_me_message_is_an_emote() {
    let Some(ev) = single("events/message/me_message.java-sdk-test.json") else {
        return;
    };
    let (_, message) = message_of(&ev);
    assert_eq!(message.style, MessageStyle::Emote);
    assert_eq!(message.body.to_plain(), "hey");
}

#[test]
fn corpus_user_edit() {
    let Some(ev) = single("events/message/message_changed.java-sdk-test.user_edit.json") else {
        return;
    };
    let InboundKind::Edit { target, message } = &ev.kind else {
        panic!("expected an edit, got {:?}", ev.kind)
    };
    assert_eq!(target, &MessageId::new("1626342128.008700"));
    assert_eq!(message.body.to_plain(), "updated message");
    assert_eq!(
        message.thread_root,
        Some(MessageId::new("1626342092.008500"))
    );
    assert_eq!(ev.sender.person.user.as_str(), "U111");
    assert_eq!(ev.at, Timestamp(1_626_342_137_008));

    // The edit event's own ts is not the target: `message.ts` is.
    let Some(ev) = single("events/envelope/event_callback.slack-morphism.message_changed.json")
    else {
        return;
    };
    let InboundKind::Edit { target, .. } = &ev.kind else {
        panic!("expected an edit, got {:?}", ev.kind)
    };
    assert_eq!(target, &MessageId::new("1701735043.989889"));
}

#[test]
fn corpus_deleted_thread_parent_is_a_delete() {
    let Some(ev) =
        single("events/message/message_changed.java-sdk-test.thread_parent_tombstone.json")
    else {
        return;
    };
    assert_eq!(
        ev.kind,
        InboundKind::Delete {
            target: MessageId::new("1728639839.746989")
        }
    );
    assert_eq!(ev.origin.channel.as_str(), "D0697V");
    // Attributed to the deleted message's author, not to Slackbot.
    assert_eq!(ev.sender.person.user.as_str(), "U06TFGNC");

    let Some(ev) = single("events/message/ossans_navi.thread_root_message_deleted.json") else {
        return;
    };
    assert_eq!(
        ev.kind,
        InboundKind::Delete {
            target: MessageId::new("1736207085.539649")
        }
    );
}

#[test]
fn corpus_message_deleted() {
    let Some(ev) = single("events/message/message_deleted.real-capture.json") else {
        return;
    };
    assert_eq!(
        ev.kind,
        InboundKind::Delete {
            target: MessageId::new("1663966382.046509")
        }
    );
    assert_eq!(ev.event, EventId::new("Ev043QRVT9FE"));
    assert_eq!(ev.sender.person.user.as_str(), "U043H11ES4V");

    // Legacy: no wrapper, no previous_message.
    let Some(ev) = single("events/legacy-docs-2016/message_deleted.0.json") else {
        return;
    };
    assert_eq!(
        ev.kind,
        InboundKind::Delete {
            target: MessageId::new("1358878749.000002")
        }
    );
    assert_eq!(
        ev.event,
        EventId::new("C2147483705:1358878755.000001:message_deleted")
    );
    assert_eq!(ev.sender.person.user.as_str(), "USLACKBOT");
}

#[test]
fn corpus_reactions() {
    // The archived docs' snippets have "..." placeholders: not JSON.
    for rel in [
        "events/legacy-docs-2016/reaction_added.0.txt",
        "events/legacy-docs-2016/reaction_removed.0.txt",
    ] {
        let Some(result) = parse_file(rel) else {
            return;
        };
        assert!(
            matches!(result, Err(Rejected::InvalidJson(_))),
            "{rel}: {result:?}"
        );
    }
    // The current docs' versions of the same events.
    for (rel, added) in [
        ("events/other/reaction_added.docs.json", true),
        ("events/other/reaction_removed.docs.json", false),
    ] {
        let Some(ev) = single(rel) else { return };
        assert_eq!(
            ev.kind,
            InboundKind::Reaction {
                target: MessageId::new("1360782400.498405"),
                key: crate::emoji::reaction_key("thumbsup"),
                added,
            }
        );
        assert_eq!(ev.origin.channel.as_str(), "C123ABC456");
        assert_eq!(ev.sender.person.user.as_str(), "U123ABC456");
        let what = if added {
            "reaction_added"
        } else {
            "reaction_removed"
        };
        assert_eq!(
            ev.event.as_str(),
            format!("C123ABC456:1360782804.083113:{what}:U123ABC456:thumbsup")
        );
    }
}

#[test]
fn corpus_file_share() {
    let Some(ev) = single("events/message/file_share.real-capture.json") else {
        return;
    };
    let (_, message) = message_of(&ev);
    assert_eq!(message.body.to_plain(), "message message message");
    assert_eq!(
        message.attachments,
        vec![
            Attachment::new(
                "F04EEHX1EES",
                "namenamename.txt",
                "text/plain",
                "https://files.slack.com/files-pri/T043DB835ML-F04EEHX1EES/download/namenamename.txt",
            )
            .with_size(12)
        ]
    );
    // Slack Connect stub: to be resolved through files.info.
    let Some(ev) = single("events/message/file_share.real-capture.slack_connect_stub_file.json")
    else {
        return;
    };
    let (_, message) = message_of(&ev);
    assert_eq!(message.attachments.len(), 1);
    assert_eq!(message.attachments[0].url, "files.info:F12345678");
}

#[test]
fn corpus_forwarded_message_is_quoted() {
    let Some(ev) = single("events/message/other.real-capture.forwarded_message.json") else {
        return;
    };
    let (_, message) = message_of(&ev);
    assert!(
        matches!(
            message.body.blocks.as_slice(),
            [switchboard_model::Block::Quote { .. }]
        ),
        "{:?}",
        message.body
    );
    assert!(message.body.to_plain().contains("123"));
}

#[test]
fn corpus_wrappers_and_control_payloads() {
    let challenge = "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P".to_owned();
    let Some(result) = parse_file("events/envelope/url_verification.docs.json") else {
        return;
    };
    assert_eq!(result, Ok(Payload::UrlVerification { challenge }));
    let Some(result) = parse_file("events/envelope/app_rate_limited.java-sdk-test.json") else {
        return;
    };
    assert_eq!(
        result,
        Ok(Payload::AppRateLimited {
            minute: 1_518_467_820
        })
    );

    // The authorizations form of the wrapper, with a team filter.
    let Some(slack) = slack_dir() else { return };
    let fx = Fixture::new();
    let bytes = std::fs::read(
        slack.join("events/envelope/event_callback.docs-authorizations-variant.json"),
    )
    .expect("corpus file");
    let ctx = |team| ParseContext {
        team: Some(team),
        ..fx.ctx()
    };
    assert_eq!(
        parse_payload(&bytes, &ctx("T123ABC456")),
        Ok(Payload::Ignored(IgnoreReason::UnknownEventType(
            "name_of_event".into()
        )))
    );
    assert_eq!(
        parse_payload(&bytes, &ctx("T999")),
        Ok(Payload::Ignored(IgnoreReason::OtherTeam(
            "T123ABC456".into()
        )))
    );
    // Shared channel: team_id is the source team, authorizations name ours.
    let shared =
        std::fs::read(slack.join(
            "events/other/member_joined_channel.bolt-python-test.shared_channel_envelope.json",
        ))
        .expect("corpus file");
    let Ok(Payload::Events(list)) = parse_payload(&shared, &ctx("T_INSTALLED")) else {
        panic!("the installed team's event is parsed");
    };
    assert!(matches!(
        &list[0].kind,
        InboundKind::Member { person, change: MemberChange::Joined } if person.user.as_str() == "W23456789"
    ));
}

#[test]
fn corpus_channel_join_of_our_bot_is_ours() {
    let Some(ev) = single("events/message/channel_join.real-capture.json") else {
        return;
    };
    assert!(ev.sender.is_ours);
    assert!(matches!(
        ev.kind,
        InboundKind::Member {
            change: MemberChange::Joined,
            ..
        }
    ));
}

#[test]
fn corpus_socket_mode_frames() {
    let Some(slack) = slack_dir() else { return };
    let read = |rel: &str| {
        std::fs::read_to_string(slack.join("events/socket_mode").join(rel)).expect("corpus file")
    };
    assert_eq!(
        parse_socket_frame(&read("hello.python-sdk-test.json")),
        Ok(SocketFrame::Hello {
            num_connections: Some(2)
        })
    );
    assert_eq!(
        parse_socket_frame(&read("disconnect.warning.node-sdk-test.json")),
        Ok(SocketFrame::Disconnect {
            reason: "warning".into()
        })
    );
    let Ok(SocketFrame::Envelope {
        envelope_id,
        kind,
        retry_attempt,
        retry_reason,
        payload,
        accepts_response_payload,
    }) = parse_socket_frame(&read("envelope.events_api.message.python-sdk-test.json"))
    else {
        panic!("an envelope");
    };
    assert_eq!(envelope_id, "ac2cfd40-6f8c-4d5e-a1ad-646e532baa19");
    assert_eq!(kind, "events_api");
    assert_eq!((retry_attempt, retry_reason), (0, None));
    assert!(!accepts_response_payload);
    let fx = Fixture::new();
    let Ok(Payload::Events(list)) = parse_payload(&payload, &fx.ctx()) else {
        panic!("the payload is an event");
    };
    let (id, message) = message_of(&list[0]);
    assert_eq!(id, &MessageId::new("1610241741.000200"));
    assert_eq!(list[0].event, EventId::new("Ev111"));
    assert_eq!(list[0].sender.person.user.as_str(), "U222");
    assert!(message.body.to_plain().ends_with(" Hi here!"));

    let Ok(SocketFrame::Envelope {
        kind,
        accepts_response_payload,
        ..
    }) = parse_socket_frame(&read("envelope.slash_commands.python-sdk-test.json"))
    else {
        panic!("an envelope");
    };
    assert_eq!(kind, "slash_commands");
    assert!(accepts_response_payload);
    assert!(matches!(
        parse_socket_frame(&read("ack.minimal.json")),
        Err(Rejected::MissingField("type"))
    ));
}

#[test]
fn corpus_huddles() {
    let Some(slack) = slack_dir() else { return };
    let fx = Fixture::new();
    let ctx = fx.ctx();
    let read = |rel: &str| -> Value {
        let bytes = std::fs::read(slack.join("calls").join(rel)).expect("corpus file");
        serde_json::from_slice(&bytes).expect("JSON")
    };
    let single_call = |result: Result<Payload, Rejected>| match result {
        Ok(Payload::Events(mut list)) if list.len() == 1 => list.pop().expect("one event"),
        other => panic!("expected one call event, got {other:?}"),
    };

    // A live huddle: started.
    let live = read("huddle_thread.message.docs-conversation-object.json")["messages"][0].clone();
    let ev = single_call(parse_history_message("C12345ABCDE", &live, &ctx));
    let call = call_of(&ev);
    assert_eq!(call.call.as_str(), "slack-huddle:R12345ABCDE");
    assert_eq!(call.provider, CallProvider::SlackHuddle);
    assert_eq!(call.state, CallState::Started);
    assert_eq!(
        call.started_by.as_ref().map(|p| p.user.as_str()),
        Some("U12345ABCDE")
    );
    assert_eq!(ev.sender.person.user.as_str(), "USLACKBOT");

    // An ended huddle: ended, with its duration, link and everyone who was in it.
    let ended =
        read("huddle_thread.conversations.replies.ossans_navi-test.json")["messages"][0].clone();
    let ev = single_call(parse_history_message("CXXXXXXX", &ended, &ctx));
    let call = call_of(&ev);
    assert_eq!(call.call.as_str(), "slack-huddle:RXXXXXXXX");
    assert_eq!(
        call.state,
        CallState::Ended {
            duration: Some(Duration::from_secs(1_745_389_769 - 1_745_387_799))
        }
    );
    assert_eq!(
        call.join_url.as_deref(),
        Some("https://example.com/huddle/TXXXXXXX/CXXXXXXX")
    );
    assert_eq!(call.participants.len(), 4);

    // The end arrives as message_changed of the huddle message: a call
    // event, not an edit.
    let mut before = ended.clone();
    before["room"]["has_ended"] = Value::Bool(false);
    before["room"]["date_end"] = Value::from(0);
    before["room"]["participants"] = serde_json::json!(["UXXXXXXX"]);
    let changed = |previous: &Value, now: &Value| {
        serde_json::json!({
            "type": "message", "subtype": "message_changed", "hidden": true,
            "channel": "CXXXXXXX", "ts": "1745389769.000200", "event_ts": "1745389769.000200",
            "message": now, "previous_message": previous,
        })
    };
    let ev = single_call(parse_value(&changed(&before, &ended), &ctx));
    assert!(matches!(
        call_of(&ev).state,
        CallState::Ended { duration: Some(_) }
    ));
    // Someone joining while it runs: updated.
    let mut joined = before.clone();
    joined["room"]["participants"] = serde_json::json!(["UXXXXXXX", "UYYYYYYY"]);
    let ev = single_call(parse_value(&changed(&before, &joined), &ctx));
    assert_eq!(call_of(&ev).state, CallState::Updated);
    assert_eq!(call_of(&ev).participants.len(), 2);
    // A reply count changing: nothing to report.
    let mut replied = before.clone();
    replied["reply_count"] = Value::from(5);
    assert_eq!(
        parse_value(&changed(&before, &replied), &ctx),
        Ok(Payload::Ignored(IgnoreReason::Unchanged))
    );
}

#[test]
fn corpus_call_blocks() {
    let Some(slack) = slack_dir() else { return };
    let fx = Fixture::new();
    let bytes = std::fs::read(slack.join("calls/call_block.expanded.java-sdk-test.json"))
        .expect("corpus file");
    let block: Value = serde_json::from_slice(&bytes).expect("JSON");
    let msg = block_message(Value::Array(vec![block.clone()]));
    let Ok(Payload::Events(list)) = parse_value(&msg, &fx.ctx()) else {
        panic!("a call");
    };
    let call = call_of(&list[0]);
    assert_eq!(call.call.as_str(), "slack-call:R111");
    assert_eq!(call.provider, CallProvider::SlackCall);
    assert_eq!(call.state, CallState::Started);
    assert_eq!(call.title.as_deref(), Some("Test call"));
    assert_eq!(
        call.join_url.as_deref(),
        Some("https://www.example.com/calls-test")
    );
    assert_eq!(
        call.started_by.as_ref().map(|p| p.user.as_str()),
        Some("U111")
    );
    let who: Vec<(&str, &str)> = call
        .participants
        .iter()
        .map(|p| (p.user.as_str(), p.display_name.as_str()))
        .collect();
    assert_eq!(
        who,
        [
            ("external:anon-111", "anonymous user 1"),
            ("USLACKBOT", "USLACKBOT")
        ]
    );

    // Ended (the block edited through calls.end): a call event, not an edit.
    let mut ended = block;
    ended["call"]["v1"]["has_ended"] = Value::Bool(true);
    ended["call"]["v1"]["date_end"] = Value::from(1_596_711_312 + 65);
    let changed = serde_json::json!({
        "type": "message", "subtype": "message_changed", "channel": "C_BLOCKS",
        "ts": "1596711400.000200", "message": block_message(Value::Array(vec![ended])),
        "previous_message": msg,
    });
    let Ok(Payload::Events(list)) = parse_value(&changed, &fx.ctx()) else {
        panic!("a call");
    };
    assert_eq!(
        call_of(&list[0]).state,
        CallState::Ended {
            duration: Some(Duration::from_secs(65))
        }
    );
}

#[test]
fn corpus_call_rejected_and_user_huddle_changed_are_ignored() {
    let Some(r) = parse_file("calls/call_rejected.event.java-sdk-test.json") else {
        return;
    };
    assert_eq!(
        r,
        Ok(Payload::Ignored(IgnoreReason::NotRelayed(
            "call_rejected".into()
        )))
    );
    let Some(r) = parse_file("calls/user_huddle_changed.event.docs.json") else {
        return;
    };
    assert_eq!(
        r,
        Ok(Payload::Ignored(IgnoreReason::NoChannel(
            "user_huddle_changed".into()
        )))
    );
}
