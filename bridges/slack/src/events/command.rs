//! Slash commands: `/switchboard …` typed by a person in Slack
//! (<https://docs.slack.dev/interactivity/implementing-slash-commands>).
//!
//! Slack sends the command's fields (`token`, `team_id`, `channel_id`,
//! `user_id`, `user_name`, `command`, `text`, `response_url`, `trigger_id`…,
//! all strings) either as a Socket Mode `slash_commands` envelope's `payload`
//! (a JSON object, [`parse_command_payload`]) or as an
//! `application/x-www-form-urlencoded` POST to the command's URL
//! ([`parse_command_form`]). Either way the answer, given within 3 s, is a
//! message only that person sees ([`Command::reply_json`]).
//!
//! - `/switchboard call [title]` → [`InboundKind::CallRequest`] from the
//!   person (`user_id`) in the conversation (`channel_id`), whether or not it
//!   is a portal (the relay decides).
//! - `help` or an empty text, or a command other than `/switchboard` → the
//!   usage text ([`USAGE`]) and no event.
//! - Any other text (`dm bob`, `portal list`, `logins`…) →
//!   [`InboundKind::Command`] with the trimmed text, answered with
//!   [`COMMAND_REPLY`]. The parser gives it the conversation it was typed in
//!   as origin; the connector then moves it to the person's direct messages
//!   with the bot (`conversations.open`), where the relay's answer (and a
//!   direct portal opened by `dm`) stays private (`Command::Submit { direct: true, .. }`).
//!
//! Every event gets the id `"slash:{trigger_id}"` (Slack mints one trigger id
//! per invocation, and a redelivery carries the same one); without a trigger
//! id, a Socket Mode envelope gives `"slash-envelope:{envelope_id}"`.
//!
//! The verification `token` is never read, kept or shown.

use super::json::{self, Obj};
use super::{ParseContext, Rejected, sender};
use serde_json::{Map, Value, json};
use switchboard_model::{EventId, Inbound, InboundKind, Origin, Timestamp};

/// The one command the app declares.
pub const COMMAND: &str = "/switchboard";

/// What the person sees once their call request is stored.
pub const CALL_REPLY: &str = "Starting a meeting for this conversation…";

/// What the person sees once another command is stored: the relay answers
/// in their direct messages with the bot.
pub const COMMAND_REPLY: &str =
    "On it — the answer will be in your direct messages with Switchboard.";

/// What the person sees for `help` or an empty text.
pub const USAGE: &str = "Usage: `/switchboard <command>`
• `call [title]`: start a meeting for this conversation and post the invite to everyone in it, wherever this channel is relayed.
• `dm <name>`: talk with someone on another platform; the conversation appears in your direct messages with Switchboard.
For administrators:
• `portal list`: the portals and their channels.
• `portal link <name> <member> <member>…`: join channels into a portal.
• `portal unlink <name>`: remove a portal.
• `logins`: linked accounts that need signing in again.
• `calls`: calls in progress.
Answers other than for `call` arrive in your direct messages with Switchboard, where these commands also work without `/switchboard`.";

/// What a slash command asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Submit this event to the relay, then show `reply`.
    Submit {
        /// The canonical event.
        event: Box<Inbound>,
        /// The ephemeral reply once it is stored.
        reply: String,
        /// The person's handle (`user_name`): their name when neither the
        /// name cache nor `users.info` knows a better one.
        handle: Option<String>,
        /// The event belongs in the person's direct messages with the bot,
        /// not in the conversation the command was typed in: the connector
        /// replaces the origin channel with that IM before submitting.
        direct: bool,
    },
    /// Show this text and do nothing else.
    Reply(String),
}

impl Command {
    /// The ephemeral message to answer with, once any event is stored.
    pub fn reply(&self) -> &str {
        match self {
            Command::Submit { reply, .. } => reply,
            Command::Reply(text) => text,
        }
    }

    /// [`Command::reply`] as Slack's response message: `{"response_type":
    /// "ephemeral", "text": …}` (a Socket Mode ack's `payload`, or the HTTP
    /// answer's body).
    pub fn reply_json(&self) -> Value {
        reply_json(self.reply())
    }
}

/// An ephemeral response message with `text`.
pub fn reply_json(text: &str) -> Value {
    json!({ "response_type": "ephemeral", "text": text })
}

/// Parses a Socket Mode `slash_commands` envelope's `payload` (JSON bytes).
/// `envelope_id` names the event when the payload has no `trigger_id`.
pub fn parse_command_payload(
    body: &[u8],
    envelope_id: Option<&str>,
    ctx: &ParseContext<'_>,
) -> Result<Command, Rejected> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| Rejected::InvalidJson(e.to_string()))?;
    let obj = value.as_object().ok_or(Rejected::NotAnObject)?;
    parse_fields(obj, envelope_id, ctx)
}

/// Parses a slash command POSTed as `application/x-www-form-urlencoded`.
pub fn parse_command_form(body: &[u8], ctx: &ParseContext<'_>) -> Result<Command, Rejected> {
    let fields = form_decode(body)?;
    let mut obj = Map::new();
    for (k, v) in fields {
        obj.entry(k).or_insert(Value::String(v));
    }
    parse_fields(&obj, None, ctx)
}

/// The command's fields, as either transport delivers them.
fn parse_fields(
    obj: &Obj,
    envelope_id: Option<&str>,
    ctx: &ParseContext<'_>,
) -> Result<Command, Rejected> {
    let command = json::req_nonempty(obj, "command")?;
    let user = json::req_nonempty(obj, "user_id")?;
    let channel = json::req_nonempty(obj, "channel_id")?;
    let text = json::opt_str(obj, "text").unwrap_or_default();
    let event = match (json::opt_nonempty(obj, "trigger_id"), envelope_id) {
        (Some(trigger), _) => format!("slash:{trigger}"),
        (None, Some(envelope)) if !envelope.is_empty() => format!("slash-envelope:{envelope}"),
        (None, _) => return Err(Rejected::MissingField("trigger_id")),
    };
    if !command.eq_ignore_ascii_case(COMMAND) {
        return Ok(Command::Reply(USAGE.to_owned()));
    }
    let text = text.trim();
    let (word, rest) = text
        .split_once(char::is_whitespace)
        .map_or((text, ""), |(w, r)| (w, r.trim()));
    let (kind, reply, direct) = if text.is_empty() || text.eq_ignore_ascii_case("help") {
        return Ok(Command::Reply(USAGE.to_owned()));
    } else if word.eq_ignore_ascii_case("call") {
        let title = (!rest.is_empty()).then(|| rest.to_owned());
        (InboundKind::CallRequest { title }, CALL_REPLY, false)
    } else {
        let text = text.to_owned();
        (
            InboundKind::Command {
                text,
                message: None,
            },
            COMMAND_REPLY,
            true,
        )
    };
    let event = Inbound::new(
        Origin::new(ctx.bridge.clone(), channel),
        EventId::new(event),
        sender::of_user(user, ctx),
        kind,
    )
    .at(Timestamp::now());
    Ok(Command::Submit {
        event: Box::new(event),
        reply: reply.to_owned(),
        handle: json::opt_nonempty(obj, "user_name").map(str::to_owned),
        direct,
    })
}

/// Decodes an `application/x-www-form-urlencoded` body (`+` is a space,
/// `%XX` a byte); the pairs in order.
pub fn form_decode(body: &[u8]) -> Result<Vec<(String, String)>, Rejected> {
    let text = std::str::from_utf8(body).map_err(|_| Rejected::InvalidForm("not UTF-8"))?;
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((percent_decode(k)?, percent_decode(v)?))
        })
        .collect()
}

/// One form-encoded component.
fn percent_decode(s: &str) -> Result<String, Rejected> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or(Rejected::InvalidForm("bad percent escape"))?;
                out.push(hex);
                i += 2;
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| Rejected::InvalidForm("not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{SocketFrame, parse_socket_frame};
    use crate::names::StaticNames;
    use switchboard_model::BridgeId;

    fn bridge() -> BridgeId {
        BridgeId::new("slack:test")
    }

    fn payload(text: &str) -> Value {
        json!({
            "token": "secret-verification-token",
            "team_id": "T111", "team_domain": "acme",
            "channel_id": "C111", "channel_name": "general",
            "user_id": "U111", "user_name": "alice",
            "command": "/switchboard", "text": text,
            "api_app_id": "A111", "is_enterprise_install": "false",
            "response_url": "https://hooks.slack.com/commands/T111/1/x",
            "trigger_id": "111.222.abc"
        })
    }

    fn parse(v: &Value) -> Result<Command, Rejected> {
        let b = bridge();
        let names = StaticNames::default();
        let ctx = ParseContext::new(&b, &names);
        parse_command_payload(v.to_string().as_bytes(), Some("env-1"), &ctx)
    }

    fn call_title(c: &Command) -> Option<Option<String>> {
        match c {
            Command::Submit { event, .. } => match &event.kind {
                InboundKind::CallRequest { title } => Some(title.clone()),
                _ => None,
            },
            Command::Reply(_) => None,
        }
    }

    #[test]
    fn call_with_a_title_is_a_call_request_from_the_person_in_the_channel() {
        let c = parse(&payload("call   Design review ")).expect("parses");
        assert_eq!(call_title(&c), Some(Some("Design review".into())));
        let Command::Submit {
            event,
            reply,
            handle,
            direct,
        } = &c
        else {
            panic!("not submitted: {c:?}")
        };
        assert_eq!(reply, CALL_REPLY);
        assert!(!direct, "a call stays in the conversation it was asked in");
        assert_eq!(event.origin.bridge, bridge());
        assert_eq!(event.origin.channel.as_str(), "C111");
        assert_eq!(event.sender.person.user.as_str(), "U111");
        // The name comes from users.info later; the handle is the fallback.
        assert_eq!(event.sender.person.display_name, "U111");
        assert_eq!(handle.as_deref(), Some("alice"));
        assert!(!event.sender.is_ours);
        assert_eq!(event.event.as_str(), "slash:111.222.abc");
        assert_eq!(
            c.reply_json(),
            json!({"response_type": "ephemeral", "text": CALL_REPLY})
        );
    }

    #[test]
    fn call_without_a_title_and_in_any_case() {
        assert_eq!(
            call_title(&parse(&payload("call")).expect("ok")),
            Some(None)
        );
        assert_eq!(
            call_title(&parse(&payload("  CALL  ")).expect("ok")),
            Some(None)
        );
    }

    fn command_text(c: &Command) -> Option<(String, bool, &str)> {
        match c {
            Command::Submit {
                event,
                direct,
                reply,
                ..
            } => match &event.kind {
                InboundKind::Command { text, .. } => Some((text.clone(), *direct, reply.as_str())),
                _ => None,
            },
            Command::Reply(_) => None,
        }
    }

    #[test]
    fn help_and_empty_get_the_usage_and_no_event() {
        for text in ["help", "HELP", " help ", "", "   "] {
            assert_eq!(
                parse(&payload(text)).expect("parses"),
                Command::Reply(USAGE.to_owned()),
                "{text:?}"
            );
        }
        let mut other = payload("call");
        other["command"] = json!("/hi-socket-mode");
        assert_eq!(
            parse(&other).expect("parses"),
            Command::Reply(USAGE.to_owned())
        );
    }

    #[test]
    fn other_texts_are_commands_for_the_relay_answered_in_the_person_s_dms() {
        for (typed, text) in [
            ("dm bob", "dm bob"),
            ("  dm   Bob Ross  ", "dm   Bob Ross"),
            ("portal list", "portal list"),
            (
                "portal link ops slack:acme/C1 teams:t/19:x",
                "portal link ops slack:acme/C1 teams:t/19:x",
            ),
            ("portal unlink ops", "portal unlink ops"),
            ("logins", "logins"),
            ("calls", "calls"),
            ("calls now", "calls now"),
            ("callme", "callme"),
            ("help me", "help me"),
        ] {
            let c = parse(&payload(typed)).expect("parses");
            assert_eq!(
                command_text(&c),
                Some((text.to_owned(), true, COMMAND_REPLY)),
                "{typed:?}"
            );
            let Command::Submit { event, .. } = &c else {
                panic!("submitted")
            };
            // The parser names the conversation it was typed in; the
            // connector moves it to the person's IM with the bot.
            assert_eq!(event.origin.channel.as_str(), "C111");
            assert_eq!(event.sender.person.user.as_str(), "U111");
            assert_eq!(event.event.as_str(), "slash:111.222.abc");
        }
    }

    #[test]
    fn the_usage_lists_every_command() {
        for needle in [
            "call [title]",
            "dm <name>",
            "administrators",
            "portal list",
            "portal link <name> <member> <member>…",
            "portal unlink <name>",
            "logins",
            "calls",
        ] {
            assert!(USAGE.contains(needle), "{needle}");
        }
    }

    #[test]
    fn missing_fields_are_rejected_by_name() {
        for field in ["command", "user_id", "channel_id"] {
            let mut v = payload("call");
            v.as_object_mut().expect("object").remove(field);
            assert_eq!(parse(&v), Err(Rejected::MissingField(field)), "{field}");
        }
        let mut v = payload("call");
        v["user_id"] = json!(5);
        assert_eq!(
            parse(&v),
            Err(Rejected::WrongType {
                field: "user_id",
                expected: "a string"
            })
        );
        assert_eq!(parse(&json!([1])), Err(Rejected::NotAnObject));
        // Without a trigger id the envelope names the event; without either, rejected.
        let mut v = payload("call");
        v.as_object_mut().expect("object").remove("trigger_id");
        let Command::Submit { event, .. } = parse(&v).expect("parses") else {
            panic!("not submitted")
        };
        assert_eq!(event.event.as_str(), "slash-envelope:env-1");
        let b = bridge();
        let names = StaticNames::default();
        let ctx = ParseContext::new(&b, &names);
        assert_eq!(
            parse_command_payload(v.to_string().as_bytes(), None, &ctx),
            Err(Rejected::MissingField("trigger_id"))
        );
        assert!(matches!(
            parse_command_payload(b"{nope", None, &ctx),
            Err(Rejected::InvalidJson(_))
        ));
    }

    #[test]
    fn the_same_invocation_always_gets_the_same_event_id() {
        let a = parse(&payload("call x")).expect("ok");
        let b = parse(&payload("call x")).expect("ok");
        let id = |c: &Command| match c {
            Command::Submit { event, .. } => event.event.clone(),
            Command::Reply(_) => panic!("no event"),
        };
        assert_eq!(id(&a), id(&b));
    }

    #[test]
    fn the_form_post_from_slack_s_signing_example_parses() {
        // The body of Slack's documented signature example (a slash command).
        let body = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let fields = form_decode(body.as_bytes()).expect("decodes");
        assert!(fields.contains(&("command".into(), "/webhook-collect".into())));
        assert!(
            fields.contains(&(
                "response_url".into(),
                "https://hooks.slack.com/commands/T1DC2JH3J/397700885554/96rGlfmibIGlgcZRskXaIFfN"
                    .into()
            ))
        );
        let b = bridge();
        let names = StaticNames::default();
        let ctx = ParseContext::new(&b, &names);
        assert_eq!(
            parse_command_form(body.as_bytes(), &ctx),
            Ok(Command::Reply(USAGE.to_owned()))
        );
        let ours = body
            .replace("%2Fwebhook-collect", "%2Fswitchboard")
            .replace("text=&", "text=call+Design+review%21&");
        let c = parse_command_form(ours.as_bytes(), &ctx).expect("parses");
        assert_eq!(call_title(&c), Some(Some("Design review!".into())));
        let Command::Submit { event, .. } = c else {
            panic!("not submitted")
        };
        assert_eq!(event.origin.channel.as_str(), "G8PSS9T3V");
        assert_eq!(event.sender.person.user.as_str(), "U2CERLKJA");
        assert_eq!(
            event.event.as_str(),
            "slash:398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
        );
    }

    #[test]
    fn malformed_forms_are_rejected() {
        for bad in ["a=%zz", "a=%4", "a=%ff%fe"] {
            assert!(
                matches!(form_decode(bad.as_bytes()), Err(Rejected::InvalidForm(_))),
                "{bad}"
            );
        }
        assert!(form_decode(&[0xff, b'=', b'1']).is_err());
        assert_eq!(
            form_decode(b"a=1&&b&c=x+y%2B").expect("ok"),
            vec![
                ("a".into(), "1".into()),
                ("b".into(), String::new()),
                ("c".into(), "x y+".into())
            ]
        );
    }

    /// The conformance corpus's slash command envelopes: a frame to ack, and
    /// a command that is not ours (usage, no event).
    #[test]
    fn the_conformance_envelopes_parse() {
        let Some(dir) = std::env::var_os("SWITCHBOARD_CONFORMANCE_DIR") else {
            eprintln!("note: SWITCHBOARD_CONFORMANCE_DIR is not set; skipping");
            return;
        };
        let dir = std::path::Path::new(&dir).join("slack/events/socket_mode");
        let b = bridge();
        let names = StaticNames::default();
        let ctx = ParseContext::new(&b, &names);
        for name in [
            "envelope.slash_commands.java-sdk-test.json",
            "envelope.slash_commands.python-sdk-test.json",
        ] {
            let text = std::fs::read_to_string(dir.join(name)).expect(name);
            let frame = parse_socket_frame(&text).expect(name);
            let SocketFrame::Envelope {
                envelope_id,
                kind,
                payload,
                accepts_response_payload,
                ..
            } = frame
            else {
                panic!("{name}: not an envelope")
            };
            assert_eq!(kind, "slash_commands");
            assert!(accepts_response_payload);
            // The captures are other apps' commands.
            assert_eq!(
                parse_command_payload(&payload, Some(&envelope_id), &ctx),
                Ok(Command::Reply(USAGE.to_owned())),
                "{name}"
            );
            // The same envelope for /switchboard call is a call request.
            let mut v: Value = serde_json::from_str(&text).expect(name);
            v["payload"]["command"] = json!("/switchboard");
            v["payload"]["text"] = json!("call Design review");
            let c =
                parse_command_payload(v["payload"].to_string().as_bytes(), None, &ctx).expect(name);
            let Command::Submit { event, .. } = c else {
                panic!("{name}: not submitted")
            };
            assert_eq!(
                event.kind,
                InboundKind::CallRequest {
                    title: Some("Design review".into())
                }
            );
            assert_eq!(event.origin.channel.as_str(), "C111");
            assert_eq!(event.sender.person.user.as_str(), "U111");
            assert_eq!(event.event.as_str(), "slash:111.222.xxx");
        }
    }
}
