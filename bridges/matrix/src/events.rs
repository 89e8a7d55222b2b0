//! Matrix room events → [`Inbound`].
//!
//! Pure conversions, no I/O: the application-service endpoint finds the
//! channel and the sender's name, then hands each event here.
//!
//! - `m.room.message`: `m.text`, `m.notice`, `m.emote` become messages with
//!   that style (text through [`crate::format::parse`], reply fallbacks
//!   dropped by the parser); `m.image`, `m.file`, `m.video`, `m.audio` (and `m.sticker`
//!   events) become messages with an [`Attachment`] whose id and URL are the
//!   `mxc://` URI. `m.relates_to` gives edits (`rel_type: m.replace` with
//!   `m.new_content`), replies (`m.in_reply_to`, unless it is a thread's
//!   fallback) and threads (`rel_type: m.thread`).
//! - `m.reaction` with `rel_type: m.annotation` is a reaction added.
//! - `m.room.redaction` (`redacts` at the top level before room version 11,
//!   in `content` since) is a reaction removed when it redacts a reaction we
//!   saw, else a delete.
//! - Calls (widgets, Element Call state, `m.call.invite`) become
//!   [`InboundKind::Call`] through [`crate::calls`].
//! - Everything else (membership and other state) is ignored here.
//!
//! Spec: <https://spec.matrix.org/v1.16/client-server-api/#mroommessage>,
//! <https://spec.matrix.org/v1.16/client-server-api/#event-replacements>,
//! <https://spec.matrix.org/v1.16/client-server-api/#threading>.

use crate::format::{self, FormatContext};
use serde_json::Value;
use switchboard_model::{
    Attachment, CursorStore, EventId, Inbound, InboundKind, Message, MessageId, MessageStyle,
    Origin, RichText, Sender, Timestamp,
};

/// The fields of a room event the connector reads.
#[derive(Debug, Clone, PartialEq)]
pub struct RoomEvent {
    /// `event_id`.
    pub event_id: String,
    /// `room_id`.
    pub room_id: String,
    /// `sender`.
    pub sender: String,
    /// `type`.
    pub kind: String,
    /// `state_key`, for state events.
    pub state_key: Option<String>,
    /// `origin_server_ts`, in ms.
    pub ts: Option<u64>,
    /// `redacts` (top level, before room version 11).
    pub redacts: Option<String>,
    /// `content`.
    pub content: Value,
}

impl RoomEvent {
    /// Reads an event; `Err` names the missing field.
    pub fn from_json(value: &Value) -> Result<RoomEvent, String> {
        let field = |name: &str| {
            value
                .get(name)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| format!("an event lacks a string {name:?}"))
        };
        Ok(RoomEvent {
            event_id: field("event_id")?,
            room_id: field("room_id")?,
            sender: field("sender")?,
            kind: field("type")?,
            state_key: value
                .get("state_key")
                .and_then(Value::as_str)
                .map(str::to_owned),
            ts: value.get("origin_server_ts").and_then(|t| {
                t.as_u64()
                    .or_else(|| t.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
            }),
            redacts: value
                .get("redacts")
                .and_then(Value::as_str)
                .map(str::to_owned),
            content: value.get("content").cloned().unwrap_or(Value::Null),
        })
    }

    /// The event the redaction removes, wherever the room version puts it.
    pub fn redacted_event(&self) -> Option<&str> {
        self.content
            .get("redacts")
            .and_then(Value::as_str)
            .or(self.redacts.as_deref())
    }

    /// For an `m.reaction` annotation: (target event, key).
    pub fn annotation(&self) -> Option<(String, String)> {
        if self.kind != "m.reaction" {
            return None;
        }
        let rel = self.content.get("m.relates_to")?;
        if rel.get("rel_type").and_then(Value::as_str) != Some("m.annotation") {
            return None;
        }
        Some((
            rel.get("event_id")?.as_str()?.to_owned(),
            rel.get("key")?.as_str()?.to_owned(),
        ))
    }
}

/// What an event needs from its surroundings to become an [`Inbound`].
pub struct Surroundings<'a> {
    /// The channel it happened in, as the relay knows it.
    pub origin: Origin,
    /// Who sent it.
    pub sender: Sender,
    /// For mentions and formatting.
    pub format: &'a FormatContext<'a>,
    /// The (target, key) of a reaction we saw earlier, by its event id.
    pub reaction: &'a dyn Fn(&str) -> Option<(String, String)>,
    /// Where calls' state is kept between their events.
    pub calls: &'a dyn CursorStore,
}

impl std::fmt::Debug for Surroundings<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Surroundings")
            .field("origin", &self.origin)
            .field("sender", &self.sender)
            .finish_non_exhaustive()
    }
}

/// The [`Inbound`] an event means, or `None` when it means nothing to the relay.
pub fn to_inbound(event: &RoomEvent, s: &Surroundings<'_>) -> Option<Inbound> {
    let kind = match event.kind.as_str() {
        "m.room.message" | "m.sticker" => message_kind(event, s)?,
        "m.reaction" => {
            let (target, key) = event.annotation()?;
            InboundKind::Reaction {
                target: MessageId::new(target),
                key,
                added: true,
            }
        }
        "m.room.redaction" => {
            let redacted = event.redacted_event()?;
            match (s.reaction)(redacted) {
                Some((target, key)) => InboundKind::Reaction {
                    target: MessageId::new(target),
                    key,
                    added: false,
                },
                None => InboundKind::Delete {
                    target: MessageId::new(redacted),
                },
            }
        }
        kind if crate::calls::is_call_event(kind, event.state_key.is_some()) => {
            InboundKind::Call(crate::calls::inbound(event, &s.sender.person, s.calls)?)
        }
        _ => return None,
    };
    let inbound = Inbound::new(
        s.origin.clone(),
        EventId::new(event.event_id.clone()),
        s.sender.clone(),
        kind,
    );
    Some(match event.ts {
        Some(ts) => inbound.at(Timestamp(ts)),
        None => inbound,
    })
}

fn message_kind(event: &RoomEvent, s: &Surroundings<'_>) -> Option<InboundKind> {
    let content = &event.content;
    let relates = content.get("m.relates_to");
    let rel_type = relates
        .and_then(|r| r.get("rel_type"))
        .and_then(Value::as_str);
    let rel_target = relates
        .and_then(|r| r.get("event_id"))
        .and_then(Value::as_str);

    if rel_type == Some("m.replace")
        && let Some(target) = rel_target
    {
        // An edit: the new content is in m.new_content; the top-level body
        // is the "* " fallback for clients that do not know edits.
        let new = content.get("m.new_content").unwrap_or(content);
        let message = message_from(new, event.kind == "m.sticker", s)?;
        return Some(InboundKind::Edit {
            target: MessageId::new(target),
            message,
        });
    }

    if let Some(title) = call_command(content) {
        return Some(InboundKind::CallRequest { title });
    }
    let in_reply_to = relates
        .and_then(|r| r.get("m.in_reply_to"))
        .and_then(|r| r.get("event_id"))
        .and_then(Value::as_str);
    let falling_back = relates
        .and_then(|r| r.get("is_falling_back"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut message = message_from(content, event.kind == "m.sticker", s)?;
    if rel_type == Some("m.thread")
        && let Some(root) = rel_target
    {
        message.thread_root = Some(MessageId::new(root));
        if !falling_back && let Some(reply) = in_reply_to.filter(|r| *r != root) {
            message.reply_to = Some(MessageId::new(reply));
        }
    } else if let Some(reply) = in_reply_to {
        message.reply_to = Some(MessageId::new(reply));
    }
    Some(InboundKind::Message {
        id: MessageId::new(event.event_id.clone()),
        message,
    })
}

/// `!call [title]` as a plain `m.text`: a request for a meeting, with its
/// title (`Some(None)` for none). Anything else, `!caller` included, is not.
fn call_command(content: &Value) -> Option<Option<String>> {
    if content.get("msgtype").and_then(Value::as_str) != Some("m.text") {
        return None;
    }
    let body = content.get("body").and_then(Value::as_str)?.trim();
    let rest = body.strip_prefix("!call")?;
    if !(rest.is_empty() || rest.starts_with(char::is_whitespace)) {
        return None;
    }
    let title = rest.trim();
    Some((!title.is_empty()).then(|| title.to_owned()))
}

/// A message from `m.room.message` content (or an `m.new_content`).
fn message_from(content: &Value, sticker: bool, s: &Surroundings<'_>) -> Option<Message> {
    let str_of = |k: &str| content.get(k).and_then(Value::as_str);
    let msgtype = if sticker {
        "m.image"
    } else {
        str_of("msgtype").unwrap_or("m.text")
    };
    let body = str_of("body").unwrap_or("");
    let html = (str_of("format") == Some("org.matrix.custom.html"))
        .then(|| str_of("formatted_body"))
        .flatten();
    // Reply fallbacks (quoted lines, `<mx-reply>`) are dropped by the parser.
    let text = |body: &str, html: Option<&str>| -> RichText { format::parse(body, html, s.format) };
    match msgtype {
        "m.image" | "m.file" | "m.video" | "m.audio" => {
            let url = str_of("url")?;
            let info = content.get("info");
            let filename = str_of("filename");
            let name = filename
                .or((!body.is_empty()).then_some(body))
                .unwrap_or("file");
            let mime = info
                .and_then(|i| i.get("mimetype"))
                .and_then(Value::as_str)
                .map_or_else(|| default_mime(msgtype).to_owned(), str::to_owned);
            let mut attachment = Attachment::new(url, name, mime, url);
            if let Some(size) = info.and_then(|i| i.get("size")).and_then(Value::as_u64) {
                attachment = attachment.with_size(size);
            }
            // Since v1.10 `body` is a caption when `filename` is given and differs.
            let caption = match filename {
                Some(f) if !body.is_empty() && body != f => text(body, html),
                _ => RichText::new(),
            };
            Some(Message::new(caption).with_attachment(attachment))
        }
        other => {
            let style = match other {
                "m.notice" => MessageStyle::Notice,
                "m.emote" => MessageStyle::Emote,
                _ => MessageStyle::Normal,
            };
            if body.is_empty() && html.is_none() {
                return None;
            }
            Some(Message::new(text(body, html)).with_style(style))
        }
    }
}

fn default_mime(msgtype: &str) -> &'static str {
    match msgtype {
        "m.image" => "image/png",
        "m.video" => "video/mp4",
        "m.audio" => "audio/ogg",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use switchboard_model::{BridgeId, Person, UserId};

    fn with<R>(f: impl FnOnce(&Surroundings<'_>) -> R) -> R {
        let bridge = BridgeId::new("matrix:example");
        let ghost_of = |_: &BridgeId, _: &UserId| None;
        let person_of_ghost = |_: &str| None;
        let fmt = FormatContext {
            bridge: &bridge,
            server_name: "example.org",
            ghost_of: &ghost_of,
            person_of_ghost: &person_of_ghost,
        };
        let reaction = |id: &str| (id == "$react").then(|| ("$target".into(), "👍".into()));
        let calls = switchboard_model::bridge::MemoryCursors::default();
        let s = Surroundings {
            origin: Origin::new("matrix:example", "#room:example.org"),
            sender: Sender::new(Person::new(
                bridge.clone(),
                UserId::new("@alice:example.org"),
                "Alice",
            )),
            format: &fmt,
            reaction: &reaction,
            calls: &calls,
        };
        f(&s)
    }

    fn ev(kind: &str, content: Value) -> RoomEvent {
        RoomEvent::from_json(&json!({
            "event_id": "$e1", "room_id": "!r:example.org", "sender": "@alice:example.org",
            "type": kind, "origin_server_ts": 1700000000000u64, "content": content,
        }))
        .expect("valid")
    }

    fn convert(e: &RoomEvent) -> Option<InboundKind> {
        with(|s| to_inbound(e, s)).map(|i| i.kind)
    }

    #[test]
    fn a_call_command_asks_for_a_meeting() {
        let kind = |body: &str, msgtype: &str| {
            with(|s| {
                to_inbound(
                    &ev("m.room.message", json!({"msgtype": msgtype, "body": body})),
                    s,
                )
            })
            .map(|i| i.kind)
        };
        assert_eq!(
            kind("!call Design review", "m.text"),
            Some(InboundKind::CallRequest {
                title: Some("Design review".into())
            })
        );
        assert_eq!(
            kind("  !call  ", "m.text"),
            Some(InboundKind::CallRequest { title: None })
        );
        for (body, msgtype) in [
            ("!caller", "m.text"),
            ("please !call", "m.text"),
            ("!call now", "m.notice"),
            ("!call now", "m.emote"),
        ] {
            assert!(
                matches!(kind(body, msgtype), Some(InboundKind::Message { .. })),
                "{body:?} as {msgtype} is a message"
            );
        }
    }

    fn message(kind: Option<InboundKind>) -> Message {
        match kind {
            Some(InboundKind::Message { message, .. }) => message,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    #[test]
    fn text_styles() {
        let m = message(convert(&ev(
            "m.room.message",
            json!({"msgtype": "m.text", "body": "hi"}),
        )));
        assert_eq!(m.body.to_plain(), "hi");
        assert_eq!(m.style, MessageStyle::Normal);
        let m = message(convert(&ev(
            "m.room.message",
            json!({"msgtype": "m.notice", "body": "n"}),
        )));
        assert_eq!(m.style, MessageStyle::Notice);
        let m = message(convert(&ev(
            "m.room.message",
            json!({"msgtype": "m.emote", "body": "waves"}),
        )));
        assert_eq!(m.style, MessageStyle::Emote);
        let i = with(|s| to_inbound(&ev("m.room.message", json!({"body": "x"})), s)).expect("msg");
        assert_eq!(i.event.as_str(), "$e1");
        assert_eq!(i.at, Timestamp(1700000000000));
    }

    #[test]
    fn files_become_attachments() {
        let m = message(convert(&ev(
            "m.room.message",
            json!({"msgtype": "m.image", "body": "cat.png", "url": "mxc://example.org/abc",
                   "info": {"mimetype": "image/png", "size": 1234}}),
        )));
        assert_eq!(m.attachments.len(), 1);
        let a = &m.attachments[0];
        assert_eq!(
            (
                a.id.as_str(),
                a.name.as_str(),
                a.mime.as_str(),
                a.size,
                a.url.as_str()
            ),
            (
                "mxc://example.org/abc",
                "cat.png",
                "image/png",
                Some(1234),
                "mxc://example.org/abc"
            )
        );
        assert!(m.body.blocks.is_empty());
        let m = message(convert(&ev(
            "m.room.message",
            json!({"msgtype": "m.file", "body": "see this", "filename": "a.pdf", "url": "mxc://e/f"}),
        )));
        assert_eq!(m.body.to_plain(), "see this");
        assert_eq!(m.attachments[0].name, "a.pdf");
        assert_eq!(m.attachments[0].mime, "application/octet-stream");
    }

    #[test]
    fn relations() {
        let edit = convert(&ev(
            "m.room.message",
            json!({"msgtype": "m.text", "body": "* fixed",
                   "m.new_content": {"msgtype": "m.text", "body": "fixed"},
                   "m.relates_to": {"rel_type": "m.replace", "event_id": "$orig"}}),
        ));
        match edit {
            Some(InboundKind::Edit { target, message }) => {
                assert_eq!(target.as_str(), "$orig");
                assert_eq!(message.body.to_plain(), "fixed");
            }
            other => panic!("{other:?}"),
        }
        let reply = message(convert(&ev(
            "m.room.message",
            json!({"msgtype": "m.text", "body": "> <@bob:e> hello\n> there\n\nanswer",
                   "m.relates_to": {"m.in_reply_to": {"event_id": "$parent"}}}),
        )));
        assert_eq!(reply.reply_to, Some(MessageId::new("$parent")));
        assert_eq!(reply.body.to_plain(), "answer");
        let in_thread = message(convert(&ev(
            "m.room.message",
            json!({"msgtype": "m.text", "body": "t",
                   "m.relates_to": {"rel_type": "m.thread", "event_id": "$root",
                                    "is_falling_back": true,
                                    "m.in_reply_to": {"event_id": "$latest"}}}),
        )));
        assert_eq!(in_thread.thread_root, Some(MessageId::new("$root")));
        assert_eq!(in_thread.reply_to, None);
        let thread_reply = message(convert(&ev(
            "m.room.message",
            json!({"msgtype": "m.text", "body": "t",
                   "m.relates_to": {"rel_type": "m.thread", "event_id": "$root",
                                    "m.in_reply_to": {"event_id": "$other"}}}),
        )));
        assert_eq!(thread_reply.reply_to, Some(MessageId::new("$other")));
    }

    #[test]
    fn reactions_and_redactions() {
        assert_eq!(
            convert(&ev(
                "m.reaction",
                json!({"m.relates_to": {"rel_type": "m.annotation", "event_id": "$t", "key": "🎉"}})
            )),
            Some(InboundKind::Reaction {
                target: MessageId::new("$t"),
                key: "🎉".into(),
                added: true
            })
        );
        assert_eq!(
            convert(&ev("m.room.redaction", json!({"redacts": "$react"}))),
            Some(InboundKind::Reaction {
                target: MessageId::new("$target"),
                key: "👍".into(),
                added: false
            })
        );
        let mut old = ev("m.room.redaction", json!({}));
        old.redacts = Some("$msg".into());
        assert_eq!(
            convert(&old),
            Some(InboundKind::Delete {
                target: MessageId::new("$msg")
            })
        );
        assert_eq!(
            convert(&ev("m.room.member", json!({"membership": "join"}))),
            None
        );
        assert_eq!(convert(&ev("m.room.redaction", json!({}))), None);
    }

    #[test]
    fn call_state_becomes_a_call() {
        let widget = RoomEvent::from_json(&json!({
            "event_id": "$w", "room_id": "!r:example.org", "sender": "@alice:example.org",
            "type": "im.vector.modular.widgets", "state_key": "jitsi_1",
            "origin_server_ts": 1700000000000u64,
            "content": {"type": "jitsi", "url": "https://x.example/j", "name": "Jitsi",
                        "data": {"domain": "meet.example", "conferenceId": "Abc"}},
        }))
        .expect("valid");
        let i = with(|s| to_inbound(&widget, s)).expect("a call");
        assert_eq!(i.event.as_str(), "$w");
        match i.kind {
            InboundKind::Call(call) => {
                assert_eq!(call.join_url.as_deref(), Some("https://meet.example/Abc"));
                assert_eq!(
                    call.started_by.map(|p| p.display_name),
                    Some("Alice".into())
                );
            }
            other => panic!("expected a call, got {other:?}"),
        }
        // A widget event without a state key is no widget.
        let mut stateless = widget.clone();
        stateless.state_key = None;
        assert_eq!(convert(&stateless), None);
    }

    #[test]
    fn missing_fields_are_named() {
        let e = RoomEvent::from_json(&json!({"event_id": "$x", "type": "m.room.message"}))
            .expect_err("refused");
        assert!(e.contains("room_id"), "{e}");
    }
}
