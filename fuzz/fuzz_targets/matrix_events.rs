//! Arbitrary bytes as a Matrix application-service transaction body
//! (`{"events":[…]}`), a bare array of events, or one event, converted the
//! way `PUT /_matrix/app/v1/transactions/{txnId}` converts them:
//! `events::RoomEvent::from_json` then `events::to_inbound` (which goes on
//! to `format::parse` and `calls::inbound`). The endpoint itself
//! (`appservice::AppserviceEndpoint`) needs a running `MatrixBridge` with a
//! relay context and the per-event filtering in `MatrixBridge::inbound_of`
//! is `pub(crate)`, so this drives the public conversion underneath it.
//! Message and edit bodies that come out are rendered back with
//! `format::render`. No panic is the only assertion.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use switchboard_matrix::events::{self, RoomEvent, Surroundings};
use switchboard_matrix::format::{self, FormatContext};
use switchboard_model::{
    BridgeId, ChannelId, InboundKind, MemoryCursors, Origin, Person, Sender, UserId,
};

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let events: Vec<&Value> = match &value {
        Value::Object(obj) => match obj.get("events") {
            Some(Value::Array(list)) => list.iter().collect(),
            _ => vec![&value],
        },
        Value::Array(list) => list.iter().collect(),
        _ => return,
    };

    let bridge = BridgeId::new("matrix");
    let ghost_of = |b: &BridgeId, u: &UserId| -> Option<String> {
        (b.as_str() != "matrix").then(|| format!("@_sb_{}_{}:example.org", b.as_str(), u.as_str()))
    };
    let person_of_ghost = |mxid: &str| -> Option<(BridgeId, UserId)> {
        let local = mxid.strip_prefix("@_sb_")?.strip_suffix(":example.org")?;
        let (b, u) = local.split_once('_')?;
        Some((BridgeId::new(b), UserId::new(u)))
    };
    let format_ctx = FormatContext {
        bridge: &bridge,
        server_name: "example.org",
        ghost_of: &ghost_of,
        person_of_ghost: &person_of_ghost,
    };
    // Call state persists across the events of one transaction, as it does
    // in the bridge's cursor store.
    let calls = MemoryCursors::default();
    // Reactions "seen earlier": any event id starting with `$r`.
    let reaction = |id: &str| -> Option<(String, String)> {
        id.starts_with("$r")
            .then(|| ("$target".to_owned(), "👍".to_owned()))
    };

    for raw in events {
        let Ok(event) = RoomEvent::from_json(raw) else {
            continue;
        };
        let _ = event.redacted_event();
        let _ = event.annotation();
        let person = Person::new(
            bridge.clone(),
            UserId::new(event.sender.clone()),
            event.sender.clone(),
        );
        let s = Surroundings {
            origin: Origin::new(bridge.clone(), ChannelId::new(event.room_id.clone())),
            sender: Sender::new(person),
            format: &format_ctx,
            reaction: &reaction,
            calls: &calls,
        };
        if let Some(inbound) = events::to_inbound(&event, &s) {
            match &inbound.kind {
                InboundKind::Message { message, .. } | InboundKind::Edit { message, .. } => {
                    let _ = format::render(&message.body, &format_ctx);
                }
                _ => {}
            }
        }
    }
});
