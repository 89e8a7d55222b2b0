//! Arbitrary (JSON-ish) bytes through the public Microsoft Graph parsers of
//! `switchboard_teams::graph`: as a change-notification POST body
//! (`parse_notification_batch`, then `parse_resource`, `is_for_tenant`,
//! `client_state_matches` per item), as a delta/list page
//! (`parse_delta_page`, then `parse_message_in` per message and `diff`
//! between consecutive versions), as one chatMessage (`parse_message`,
//! `diff` against itself), and as a notification URL query
//! (`validation_token`). Message and edit bodies that come out are rendered
//! back to Teams HTML. No panic is the only assertion.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_model::{BridgeId, InboundKind};
use switchboard_teams::graph::{self, Notification, ParseContext, Parsed};
use switchboard_teams::html;

fn render_bodies(parsed: &Parsed, bridge: &BridgeId) {
    if let Parsed::Events(list) = parsed {
        for inbound in list {
            match &inbound.kind {
                InboundKind::Message { message, .. } | InboundKind::Edit { message, .. } => {
                    let _ = html::render(&message.body, bridge);
                }
                _ => {}
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let bridge = BridgeId::new("teams");
    let our_users = ["00000000-0000-0000-0000-0000000000aa".to_owned()];
    let mut ctx = ParseContext::new(&bridge);
    ctx.tenant = Some("tenant-1");
    ctx.our_users = &our_users;
    ctx.call_to = Some("00000000-0000-0000-0000-0000000000aa");

    // A change-notification batch.
    if let Ok(batch) = graph::parse_notification_batch(data) {
        for item in &batch.items {
            let _ = item.is_for_tenant(ctx.tenant);
            let _ = graph::client_state_matches("secret", item.client_state());
            if let Notification::Change { resource, .. } = item
                && let Some(r) = graph::parse_resource(resource)
            {
                let _ = r.channel_id();
                let _ = r.message_id();
            }
        }
    }
    let _ = graph::parse_notifications(data);

    // A delta or list page.
    if let Ok(page) = graph::parse_delta_page(data) {
        let conversation = page.conversation();
        let mut previous: Option<&serde_json::Value> = None;
        for message in &page.messages {
            if let Ok(parsed) = graph::parse_message_in(message, conversation.as_ref(), &ctx) {
                render_bodies(&parsed, &bridge);
            }
            if let Ok(parsed) = graph::diff(previous, message, &ctx) {
                render_bodies(&parsed, &bridge);
            }
            previous = Some(message);
        }
    }

    // One chatMessage.
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        if let Ok(parsed) = graph::parse_message(&value, &ctx) {
            render_bodies(&parsed, &bridge);
        }
        let _ = graph::diff(Some(&value), &value, &ctx);
    }

    // A notification URL's query string and a resource path.
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = graph::validation_token(text);
        let _ = graph::parse_resource(text);
        let _ = graph::context_resource(text);
    }
});
