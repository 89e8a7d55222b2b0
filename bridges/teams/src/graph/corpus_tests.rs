//! The corpus test: every chatMessage, change notification, delta page and
//! system message under `$SWITCHBOARD_CONFORMANCE_DIR/teams` parses into
//! canonical events or is ignored or rejected with a named reason. Counts per
//! outcome are printed; important files are asserted by name.

use super::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use switchboard_model::{CallState, Inline};

/// The corpus's `teams` folder, or None (with a note) when the variable is unset.
fn teams_dir() -> Option<PathBuf> {
    let Some(root) = std::env::var_os("SWITCHBOARD_CONFORMANCE_DIR") else {
        println!("note: SWITCHBOARD_CONFORMANCE_DIR is unset; skipping the Teams Graph corpus");
        return None;
    };
    let dir = PathBuf::from(root).join("teams");
    assert!(
        dir.join("graph").is_dir() && dir.join("notifications").is_dir(),
        "SWITCHBOARD_CONFORMANCE_DIR is set but {} lacks graph/ or notifications/",
        dir.display()
    );
    Some(dir)
}

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

/// Looks like a Graph chatMessage.
fn is_chat_message(v: &Value) -> bool {
    let Some(o) = v.as_object() else { return false };
    o.get("@odata.type")
        .and_then(Value::as_str)
        .is_some_and(|t| t.eq_ignore_ascii_case("#microsoft.graph.chatMessage"))
        || (o.contains_key("messageType") && o.contains_key("body"))
}

fn is_notification_body(v: &Value) -> bool {
    let Some(o) = v.as_object() else { return false };
    o.contains_key("subscriptionId")
        && (o.contains_key("changeType") || o.contains_key("lifecycleEvent"))
        || o.get("value")
            .and_then(Value::as_array)
            .is_some_and(|items| {
                !items.is_empty()
                    && items.iter().all(|i| i.get("subscriptionId").is_some())
                    && items
                        .iter()
                        .any(|i| i.get("changeType").is_some() || i.get("lifecycleEvent").is_some())
            })
}

/// A short, stable description of a chatMessage outcome.
fn label(result: &Result<Parsed, Rejected>) -> String {
    match result {
        Ok(Parsed::Events(list)) => list
            .iter()
            .map(|i| match &i.kind {
                InboundKind::Call(call) => match call.state {
                    CallState::Started => "call:started".to_owned(),
                    CallState::Updated => "call:updated".to_owned(),
                    CallState::Ended { .. } => "call:ended".to_owned(),
                },
                kind => kind.label().to_owned(),
            })
            .collect::<Vec<_>>()
            .join("+"),
        Ok(Parsed::Ignored(reason)) => match reason {
            IgnoreReason::UnsupportedMessageType(d) | IgnoreReason::SystemEvent(d) => {
                format!("ignored:{}:{d}", reason.label())
            }
            other => format!("ignored:{}", other.label()),
        },
        Err(rejected) => format!("rejected:{}", rejected.label()),
    }
}

fn notification_label(result: &Result<Vec<Notification>, Rejected>) -> String {
    match result {
        Ok(items) => items
            .iter()
            .map(|n| match n {
                Notification::Change { change_type, .. } => format!("change:{change_type:?}"),
                Notification::Lifecycle { event, .. } => format!("lifecycle:{event:?}"),
            })
            .collect::<Vec<_>>()
            .join("+"),
        Err(rejected) => format!("rejected:{}", rejected.label()),
    }
}

/// Every case: (name, outcome label).
struct Corpus {
    cases: Vec<(String, String)>,
    /// Mentions resolved through `mentions[]`.
    mentions: usize,
    skipped: BTreeMap<String, usize>,
}

impl Corpus {
    fn message(&mut self, name: String, value: &Value, ctx: &ParseContext<'_>) {
        self.message_in(name, value, None, ctx);
    }

    fn message_in(
        &mut self,
        name: String,
        value: &Value,
        conversation: Option<&ResourceRef>,
        ctx: &ParseContext<'_>,
    ) {
        let result = parse_message_in(value, conversation, ctx);
        // Every `<at id>` of a relayed message resolves through mentions[]
        // (application mentions stay text by design).
        if let Ok(Parsed::Events(list)) = &result {
            for ev in list {
                let (InboundKind::Message { message, .. } | InboundKind::Edit { message, .. }) =
                    &ev.kind
                else {
                    continue;
                };
                let content = value["body"]["content"].as_str().unwrap_or("");
                let apps = value["mentions"].as_array().map_or(0, |m| {
                    m.iter()
                        .filter(|m| m["mentioned"]["application"].is_object())
                        .count()
                });
                let tags = content.matches("<at ").count();
                let mut body = message.body.clone();
                let mut resolved = 0;
                body.for_each_inline_mut(&mut |i| {
                    if matches!(
                        i,
                        Inline::UserMention { .. }
                            | Inline::ChannelMention { .. }
                            | Inline::RoomMention
                    ) {
                        resolved += 1;
                    }
                });
                assert_eq!(resolved + apps, tags, "{name}: mentions in {content}");
                self.mentions += resolved;
            }
        }
        if let Ok(Parsed::Events(list)) = &result {
            for ev in list {
                assert!(
                    !ev.origin.channel.as_str().is_empty(),
                    "{name}: empty channel"
                );
                assert!(!ev.event.as_str().is_empty(), "{name}: empty event id");
            }
            let mut ids: Vec<&str> = list.iter().map(|e| e.event.as_str()).collect();
            ids.sort_unstable();
            ids.dedup();
            assert_eq!(ids.len(), list.len(), "{name}: duplicate event ids");
        }
        // A version compared with itself changes nothing.
        if matches!(result, Ok(Parsed::Events(_)))
            && conversation.is_none()
            && opt_str_at(value, "deletedDateTime").is_none()
        {
            assert_eq!(
                diff(Some(value), value, ctx),
                Ok(Parsed::Ignored(IgnoreReason::Unchanged)),
                "{name}: diff with itself"
            );
        }
        self.cases.push((name, label(&result)));
    }

    fn response(&mut self, name: &str, body: &Value, ctx: &ParseContext<'_>) {
        if is_chat_message(body) {
            self.message(name.to_owned(), body, ctx);
            return;
        }
        let Some(items) = body.get("value").and_then(Value::as_array) else {
            self.skip("not a chatMessage, list or notification");
            return;
        };
        if !items.iter().any(is_chat_message) {
            self.skip("a list of other resources");
            return;
        }
        let bytes = serde_json::to_vec(body).expect("serialises");
        let page = parse_delta_page(&bytes).expect("a list response is a page");
        self.cases.push((
            format!("{name}#page"),
            format!(
                "page:{}{}",
                page.messages.len(),
                if page.delta_link.is_some() {
                    ":delta_link"
                } else if page.next_link.is_some() {
                    ":next_link"
                } else {
                    ""
                }
            ),
        ));
        let conversation = page.conversation();
        for (n, msg) in page.messages.iter().enumerate() {
            self.message_in(
                format!("{name}#value[{n}]"),
                msg,
                conversation.as_ref(),
                ctx,
            );
        }
    }

    fn skip(&mut self, why: &str) {
        *self.skipped.entry(why.to_owned()).or_default() += 1;
    }
}

fn opt_str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// Outcomes asserted by name.
const EXPECTED: &[(&str, &str)] = &[
    ("graph/system-messages/call-started.json", "call:started"),
    ("graph/system-messages/call-ended.json", "call:ended"),
    (
        "graph/system-messages/call-recording.json",
        "ignored:system_event:callRecordingEventMessageDetail",
    ),
    (
        "graph/system-messages/call-transcript.json",
        "ignored:system_event:callTranscriptEventMessageDetail",
    ),
    ("graph/system-messages/chat-renamed.json", "channel_info"),
    (
        "graph/system-messages/meeting-policy-updated.json",
        "ignored:system_event:meetingPolicyUpdatedEventMessageDetail",
    ),
    ("graph/system-messages/members-added.json", "member+member"),
    ("graph/system-messages/members-deleted.json", "member"),
    ("graph/system-messages/members-joined.json", "member"),
    ("graph/system-messages/members-left.json", "member"),
    (
        "notifications/payloads/chatmessage-notification-decrypted-resource.json",
        "message",
    ),
    (
        "notifications/payloads/chatmessage-notification-with-resource-data.json",
        "change:Created",
    ),
    (
        "notifications/payloads/chatmessage-notification-without-resource-data.json",
        "change:Created",
    ),
    (
        "notifications/payloads/lifecycle-missed.json",
        "lifecycle:Missed",
    ),
    (
        "notifications/payloads/lifecycle-reauthorizationRequired.json",
        "lifecycle:ReauthorizationRequired",
    ),
    (
        "notifications/payloads/lifecycle-subscriptionRemoved.json",
        "lifecycle:SubscriptionRemoved",
    ),
    (
        "graph/samples/chat-list-messages-beta-with-edited-message.json#value[0]",
        "edit",
    ),
    (
        "graph/examples-2021/chatmessage-get.examples.json#examples[2]",
        "message",
    ),
    (
        "graph/examples-2021/chatmessage-post-replies.examples.json#examples[1]",
        "message",
    ),
];

#[test]
fn corpus_parses_with_named_outcomes() {
    let Some(dir) = teams_dir() else { return };
    let bridge = BridgeId::new("teams:corpus");
    let ctx = ParseContext::new(&bridge);
    let mut corpus = Corpus {
        cases: Vec::new(),
        mentions: 0,
        skipped: BTreeMap::new(),
    };
    let mut files = 0;
    for path in files_under(&dir) {
        let rel = path
            .strip_prefix(&dir)
            .expect("under dir")
            .to_string_lossy()
            .replace('\\', "/");
        if rel.starts_with("html/") || rel.starts_with("botframework/") {
            corpus.skip("HTML samples and Bot Framework activities (not Graph payloads)");
            continue;
        }
        if !rel.ends_with(".json") {
            corpus.skip("not JSON (notes, HTTP transcripts)");
            continue;
        }
        files += 1;
        let bytes = std::fs::read(&path).expect("readable");
        let value: Value = serde_json::from_slice(&bytes).expect("corpus JSON parses");
        if is_notification_body(&value) {
            let result = parse_notifications(&bytes);
            for n in result.iter().flatten() {
                if let Notification::Change { resource, .. } = n {
                    let r = parse_resource(resource).expect("resource parses");
                    assert!(r.channel_id().is_some(), "{rel}: resource channel");
                    assert!(r.message_id().is_some(), "{rel}: resource message");
                }
            }
            corpus.cases.push((rel, notification_label(&result)));
        } else if is_chat_message(&value) {
            corpus.message(rel, &value, &ctx);
        } else if let Some(examples) = value.get("examples").and_then(Value::as_array) {
            for (n, example) in examples.iter().enumerate() {
                match example.get("response").and_then(|r| r.get("body")) {
                    Some(body) if body.is_object() => {
                        corpus.response(&format!("{rel}#examples[{n}]"), body, &ctx);
                    }
                    _ => corpus.skip("example without a JSON response body"),
                }
            }
        } else if let Some(response) = value.get("response").filter(|r| r.is_object()) {
            corpus.response(&rel, response, &ctx);
        } else {
            corpus.skip("not a chatMessage, list or notification");
        }
    }
    // Counts per outcome.
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, label) in &corpus.cases {
        *counts.entry(label.as_str()).or_default() += 1;
    }
    println!(
        "teams graph corpus: {files} JSON files, {} cases, {} mentions resolved",
        corpus.cases.len(),
        corpus.mentions
    );
    for (label, n) in &counts {
        println!("  {n:4}  {label}");
    }
    for (why, n) in &corpus.skipped {
        println!("  skipped {n:4}  {why}");
    }
    for (name, label) in &corpus.cases {
        if label.starts_with("rejected") || label.starts_with("ignored") {
            println!("    {name}: {label}");
        }
    }
    // Important files by name.
    for (name, expected) in EXPECTED {
        let got = corpus
            .cases
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, l)| l.as_str());
        assert_eq!(got, Some(*expected), "{name}");
    }
    // No chatMessage from a documented response is rejected.
    let rejected: Vec<_> = corpus
        .cases
        .iter()
        .filter(|(_, l)| l.starts_with("rejected"))
        .collect();
    assert!(rejected.is_empty(), "unexplained rejections: {rejected:?}");
    assert!(
        counts.get("message").copied().unwrap_or(0) >= 20,
        "{counts:?}"
    );

    // Id conventions on real documents: a channel reply is "{root}/{id}" in
    // "{team}/{channel}", found from `@odata.context` when the POST response
    // has no channelIdentity.
    let text = std::fs::read_to_string(
        dir.join("graph/examples-2021/chatmessage-post-replies.examples.json"),
    )
    .expect("readable");
    let value: Value = serde_json::from_str(&text).expect("JSON");
    let reply = &value["examples"][1]["response"]["body"];
    let list = parse_message(reply, &ctx).expect("parses").into_events();
    let InboundKind::Message { id, message } = &list[0].kind else {
        panic!("a message")
    };
    assert_eq!(id.as_str(), "1590776551682/1591039710682");
    assert_eq!(
        message.thread_root.as_ref().map(MessageId::as_str),
        Some("1590776551682")
    );
    assert_eq!(
        list[0].origin.channel.as_str(),
        "57fb72d0-d811-46f4-8947-305e6072eaa5/19:4b6bed8d24574f6a9e436813cb2617d8@thread.tacv2"
    );
    // The call that ended lasted PT59S.
    let text = std::fs::read_to_string(dir.join("graph/system-messages/call-ended.json"))
        .expect("readable");
    let value: Value = serde_json::from_str(&text).expect("JSON");
    let list = parse_message(&value, &ctx).expect("parses").into_events();
    let InboundKind::Call(call) = &list[0].kind else {
        panic!("a call")
    };
    assert_eq!(
        call.call.as_str(),
        "teams-call:9c848c0e-f906-4dfc-b22e-c68a785a587c"
    );
    assert_eq!(
        call.state,
        CallState::Ended {
            duration: Some(std::time::Duration::from_secs(59))
        }
    );
    assert_eq!(call.participants.len(), 1);
}
