//! Matrix message content → RichText (`switchboard_matrix::format::parse`):
//! the input as `formatted_body` (`org.matrix.custom.html`) and as a plain
//! `body`, and back: `format::render` of what was parsed, that rendering
//! parsed again, and the `MatrixDialect` (`switchboard convert`) both ways.
//! The format context knows one ghost namespace (`@_sb_…`) so pills of
//! ghosts and of real users are both exercised. No panic is the only
//! assertion (the documented round trip only holds for a subset of
//! RichText, so it is not checked).
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_matrix::format::{self, FormatContext, MatrixDialect};
use switchboard_model::dialect::Dialect;
use switchboard_model::{BridgeId, UserId};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
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
    let ctx = FormatContext {
        bridge: &bridge,
        server_name: "example.org",
        ghost_of: &ghost_of,
        person_of_ghost: &person_of_ghost,
    };

    // As formatted_body (with a fallback body) and as a plain body.
    for parsed in [
        format::parse("fallback", Some(text), &ctx),
        format::parse(text, None, &ctx),
    ] {
        let rendered = format::render(&parsed, &ctx);
        let _ = format::parse(&rendered.body, rendered.formatted_body.as_deref(), &ctx);
    }

    // The convert dialect (reads a content object or plain text).
    if let Ok(parsed) = MatrixDialect.parse(text) {
        let _ = MatrixDialect.render(&parsed);
    }
});
