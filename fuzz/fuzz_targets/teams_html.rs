//! Teams chatMessage HTML → RichText (`switchboard_teams::html::parse`, with
//! a `mentions[]` table), plain-text bodies (`html::parse_text`), and back:
//! `html::render` of what was parsed, that rendering parsed again with the
//! mentions it produced, and `html::split_to_limit` with a small budget.
//! Invariants checked (documented by `split_to_limit`): at least one part,
//! at most `MAX_PARTS`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_model::BridgeId;
use switchboard_teams::html::{self, ConversationRef, MAX_PARTS, Mention};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let bridge = BridgeId::new("teams");
    let mentions = [
        Mention {
            id: 0,
            text: "Bob".to_owned(),
            user_id: Some("00000000-0000-0000-0000-000000000001".to_owned()),
            display_name: "Bob Example".to_owned(),
            conversation: None,
            tag_id: None,
            application_id: None,
        },
        Mention {
            id: 1,
            text: "General".to_owned(),
            user_id: None,
            display_name: "General".to_owned(),
            conversation: Some(ConversationRef {
                id: "19:abc@thread.tacv2".to_owned(),
                identity_type: "channel".to_owned(),
            }),
            tag_id: None,
            application_id: None,
        },
        Mention {
            id: 2,
            text: "Everyone".to_owned(),
            user_id: None,
            display_name: "Everyone".to_owned(),
            conversation: None,
            tag_id: Some("tag1".to_owned()),
            application_id: None,
        },
    ];

    let parsed = html::parse(text, &mentions, &bridge);
    let _ = html::parse_text(text);

    let (rendered, rendered_mentions) = html::render(&parsed.body, &bridge);
    let _ = html::parse(&rendered, &rendered_mentions, &bridge);
    for m in &rendered_mentions {
        let _ = Mention::from_graph(&m.to_graph());
    }

    let parts = html::split_to_limit(&parsed.body, &bridge, 512);
    assert!(!parts.is_empty(), "split_to_limit returned no part");
    assert!(parts.len() <= MAX_PARTS, "split_to_limit returned {} parts", parts.len());
});
