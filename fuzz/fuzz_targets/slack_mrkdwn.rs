//! Slack mrkdwn text → RichText (`switchboard_slack::mrkdwn::parse`), and
//! back: `mrkdwn::render`, `blocks::render_rich_text` and
//! `blocks::parse_rich_text` of what was parsed must not panic either.
//! Invariant checked: `mrkdwn::parse` documents that its result is
//! normalised, so normalising it again changes nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_model::{BridgeId, RichText};
use switchboard_slack::names::StaticNames;
use switchboard_slack::{blocks, mrkdwn};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let bridge = BridgeId::new("slack");
    let names = StaticNames {
        users: vec![("U123".to_owned(), "Bob <&> *bold*".to_owned())],
        channels: vec![("C123".to_owned(), "general".to_owned())],
    };

    let parsed = mrkdwn::parse(text, &bridge, &names);
    let mut again = parsed.clone();
    again.normalize();
    assert_eq!(again, parsed, "mrkdwn::parse returned a body that is not normalised");
    let _ = parsed.to_plain();

    // Rendered back to mrkdwn, and that parsed once more.
    let rendered = mrkdwn::render(&parsed, &bridge);
    let _: RichText = mrkdwn::parse(&rendered, &bridge, &names);
    // Rendered for another bridge (mentions become plain text).
    let _ = mrkdwn::render(&parsed, &BridgeId::new("other"));

    // The rich_text block dialect, both ways.
    let block = blocks::render_rich_text(&parsed, &bridge);
    let _ = blocks::parse_rich_text(&serde_json::Value::Array(vec![block]), &bridge, &names);
});
