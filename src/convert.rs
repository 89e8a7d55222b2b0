//! `switchboard convert`: one text format to another through RichText, to see
//! what the bridge will do to a message.

use switchboard_model::Dialect;
use switchboard_model::dialect;

/// Every dialect this build knows.
pub fn dialects() -> Vec<Box<dyn Dialect>> {
    let mut all = dialect::builtin();
    all.push(Box::new(switchboard_slack::mrkdwn::SlackDialect));
    all.push(Box::new(switchboard_teams::html::TeamsDialect));
    all.push(Box::new(switchboard_matrix::format::MatrixDialect));
    all
}

/// Why a conversion failed.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// No dialect of that name.
    #[error("unknown dialect {name:?}; known: {known}")]
    UnknownDialect {
        /// The name asked for.
        name: String,
        /// The names known.
        known: String,
    },
    /// The input does not parse.
    #[error(transparent)]
    Parse(#[from] dialect::DialectError),
}

fn find(name: &str) -> Result<Box<dyn Dialect>, ConvertError> {
    let all = dialects();
    let known = all.iter().map(|d| d.name()).collect::<Vec<_>>().join(", ");
    all.into_iter()
        .find(|d| d.name() == name)
        .ok_or_else(|| ConvertError::UnknownDialect {
            name: name.to_owned(),
            known,
        })
}

/// Converts `input` from dialect `from` to dialect `to`.
pub fn convert(from: &str, to: &str, input: &str) -> Result<String, ConvertError> {
    let (from, to) = (find(from)?, find(to)?);
    let body = from.parse(input)?;
    Ok(to.render(&body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_to_json_and_back() {
        let json = convert("plain", "richtext-json", "hello\nworld\n\nsecond").expect("converts");
        assert!(json.contains("\"line_break\""), "{json}");
        assert_eq!(
            convert("richtext-json", "plain", &json).expect("back"),
            "hello\nworld\n\nsecond"
        );
    }

    #[test]
    fn unknown_dialect_names_the_known_ones() {
        let err = convert("html", "plain", "x").expect_err("unknown");
        assert_eq!(
            err.to_string(),
            "unknown dialect \"html\"; known: richtext-json, plain, slack, teams, matrix"
        );
    }

    #[test]
    fn slack_mrkdwn_through_richtext() {
        let out = convert(
            "slack",
            "plain",
            "*hi* <https://x.org|there> :+1: &amp; <!here>",
        )
        .expect("converts");
        assert_eq!(out, "hi there (https://x.org) 👍 & @room");
        let back = convert("plain", "slack", "a < b & c").expect("converts");
        assert_eq!(back, "a &lt; b &amp; c");
    }

    #[test]
    fn teams_html_through_richtext() {
        let out = convert(
            "teams",
            "slack",
            "<p><b>hi</b> <a href=\"https://x.org\">there</a></p>",
        )
        .expect("converts");
        assert_eq!(out, "*hi* <https://x.org|there>");
        let html = convert("plain", "teams", "a < b").expect("converts");
        assert!(html.contains("a &lt; b"), "{html}");
    }

    #[test]
    fn bad_input_is_a_clear_error() {
        let err = convert("richtext-json", "plain", "{").expect_err("bad json");
        assert!(
            err.to_string().starts_with("cannot parse richtext-json:"),
            "{err}"
        );
    }
}
