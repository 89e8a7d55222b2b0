//! Text dialects that convert through [`RichText`].
//!
//! Each platform crate adds its own (Slack mrkdwn, Teams HTML, Matrix HTML);
//! this crate ships `richtext-json` (the tree itself, lossless) and `plain`.

use crate::richtext::RichText;

/// Why a text could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot parse {dialect}: {reason}")]
pub struct DialectError {
    /// The dialect.
    pub dialect: &'static str,
    /// What is wrong.
    pub reason: String,
}

/// A text format.
pub trait Dialect: Send + Sync {
    /// The name used on the command line (`switchboard convert --from NAME`).
    fn name(&self) -> &'static str;
    /// Parses text in this dialect.
    fn parse(&self, input: &str) -> Result<RichText, DialectError>;
    /// Renders into this dialect.
    fn render(&self, body: &RichText) -> String;
}

/// The RichText tree as JSON: lossless, for integrations and debugging.
#[derive(Debug, Clone, Copy, Default)]
pub struct RichTextJson;

impl Dialect for RichTextJson {
    fn name(&self) -> &'static str {
        "richtext-json"
    }

    fn parse(&self, input: &str) -> Result<RichText, DialectError> {
        let mut body: RichText = serde_json::from_str(input).map_err(|e| DialectError {
            dialect: "richtext-json",
            reason: e.to_string(),
        })?;
        body.normalize();
        Ok(body)
    }

    fn render(&self, body: &RichText) -> String {
        serde_json::to_string_pretty(body).unwrap_or_default()
    }
}

/// Plain text: no markup; blank lines separate paragraphs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Plain;

impl Dialect for Plain {
    fn name(&self) -> &'static str {
        "plain"
    }

    fn parse(&self, input: &str) -> Result<RichText, DialectError> {
        Ok(RichText::plain(input.trim_end_matches('\n')))
    }

    fn render(&self, body: &RichText) -> String {
        body.to_plain()
    }
}

/// The dialects this crate ships.
pub fn builtin() -> Vec<Box<dyn Dialect>> {
    vec![Box::new(RichTextJson), Box::new(Plain)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::richtext::{Block, Inline};
    use proptest::prelude::*;

    fn text_run() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9 ,.!?éü👍]{1,12}"
    }

    fn inline() -> impl Strategy<Value = Inline> {
        let leaf = prop_oneof![
            text_run().prop_map(Inline::text),
            "[a-z]{1,8}".prop_map(|code| Inline::Code { code }),
            Just(Inline::LineBreak),
            Just(Inline::RoomMention),
            ("[a-z]{1,6}", "[A-Z0-9]{1,6}", "[A-Za-z ]{1,8}").prop_map(|(b, u, n)| {
                Inline::UserMention {
                    bridge: b.as_str().into(),
                    user: u.as_str().into(),
                    name: n,
                }
            }),
            ("[a-z_]{1,8}", proptest::option::of(Just("👍".to_owned())))
                .prop_map(|(name, unicode)| Inline::Emoji { name, unicode }),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 1..3)
                    .prop_map(|content| Inline::Bold { content }),
                prop::collection::vec(inner.clone(), 1..3)
                    .prop_map(|content| Inline::Italic { content }),
                prop::collection::vec(inner.clone(), 1..3)
                    .prop_map(|content| Inline::Strike { content }),
                (
                    "https://[a-z]{1,8}\\.org",
                    prop::collection::vec(inner, 0..3)
                )
                    .prop_map(|(url, content)| Inline::Link { url, content }),
            ]
        })
    }

    pub(crate) fn richtext() -> impl Strategy<Value = RichText> {
        let block = prop_oneof![
            prop::collection::vec(inline(), 1..5).prop_map(|content| Block::Paragraph { content }),
            (proptest::option::of("[a-z]{1,5}"), "[a-z(){};\n ]{1,20}")
                .prop_map(|(language, code)| Block::CodeBlock { language, code }),
        ];
        let block = block.prop_recursive(2, 8, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 1..3)
                    .prop_map(|blocks| Block::Quote { blocks }),
                (
                    any::<bool>(),
                    prop::collection::vec(prop::collection::vec(inner, 1..2), 1..3)
                )
                    .prop_map(|(ordered, items)| Block::List { ordered, items }),
            ]
        });
        prop::collection::vec(block, 0..4).prop_map(|blocks| {
            let mut body = RichText { blocks };
            body.normalize();
            body
        })
    }

    proptest! {
        #[test]
        fn richtext_json_round_trips(body in richtext()) {
            let d = RichTextJson;
            prop_assert_eq!(d.parse(&d.render(&body)).expect("own output parses"), body);
        }

        #[test]
        fn plain_round_trips_plain_text(paras in prop::collection::vec("[a-z ]{1,10}(\n[a-z ]{1,10}){0,2}", 1..4)) {
            let body = RichText::plain(paras.join("\n\n"));
            let d = Plain;
            prop_assert_eq!(d.parse(&d.render(&body)).expect("plain always parses"), body);
        }

        #[test]
        fn normalize_is_idempotent(body in richtext()) {
            let mut again = body.clone();
            again.normalize();
            prop_assert_eq!(again, body);
        }
    }

    #[test]
    fn bad_json_is_a_clear_error() {
        let err = RichTextJson
            .parse("{\"blocks\": 3}")
            .expect_err("not a tree");
        assert!(
            err.to_string().starts_with("cannot parse richtext-json:"),
            "{err}"
        );
    }
}
