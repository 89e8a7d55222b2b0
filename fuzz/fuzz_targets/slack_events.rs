//! Arbitrary bytes as a Slack Socket Mode frame
//! (`events::parse_socket_frame`), an Events API payload
//! (`events::parse_payload`), a `conversations.history` message
//! (`events::parse_history_message`) and a slash command
//! (`events::parse_command_payload`, `events::parse_command_form`). Message
//! and edit bodies that come out are rendered back to mrkdwn. No panic is
//! the only assertion (the module promises "nothing here panics on any
//! input").
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_model::{BridgeId, InboundKind};
use switchboard_slack::events::{self, ParseContext, Payload, SocketFrame};
use switchboard_slack::mrkdwn;
use switchboard_slack::names::StaticNames;

fn render_bodies(payload: &Payload, bridge: &BridgeId) {
    if let Payload::Events(list) = payload {
        for inbound in list {
            match &inbound.kind {
                InboundKind::Message { message, .. } | InboundKind::Edit { message, .. } => {
                    let _ = mrkdwn::render(&message.body, bridge);
                }
                _ => {}
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let bridge = BridgeId::new("slack");
    let names = StaticNames {
        users: vec![("U123".to_owned(), "Bob".to_owned())],
        channels: vec![("C123".to_owned(), "general".to_owned())],
    };
    let mut ctx = ParseContext::new(&bridge, &names);
    ctx.team = Some("T123");
    ctx.our_bot_id = Some("B123");
    ctx.our_app_id = Some("A123");
    ctx.our_bot_user = Some("U999");

    // As a Socket Mode text frame; an envelope's payload goes on to the
    // parser its kind selects, as the connector does.
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(SocketFrame::Envelope {
            envelope_id,
            kind,
            payload,
            ..
        }) = events::parse_socket_frame(text)
    {
        match kind.as_str() {
            "slash_commands" => {
                let _ = events::parse_command_payload(&payload, Some(&envelope_id), &ctx);
            }
            _ => {
                if let Ok(parsed) = events::parse_payload(&payload, &ctx) {
                    render_bodies(&parsed, &bridge);
                }
            }
        }
    }

    // As an HTTP Events API body.
    if let Ok(parsed) = events::parse_payload(data, &ctx) {
        render_bodies(&parsed, &bridge);
    }
    // As a history message (catch-up) and a slash command in both transports.
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        if let Ok(parsed) = events::parse_history_message("C123", &value, &ctx) {
            render_bodies(&parsed, &bridge);
        }
    }
    let _ = events::parse_command_payload(data, None, &ctx);
    let _ = events::parse_command_form(data, &ctx);
});
