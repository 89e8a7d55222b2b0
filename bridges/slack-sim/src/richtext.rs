//! The `rich_text` block Slack attaches to a message posted with plain `text`, mirroring it
//! element by element: user, channel, usergroup and broadcast mentions, links, emoji, and
//! `*bold*` / `_italic_` / `~strike~` / `` `code` `` styles; fenced code becomes
//! `rich_text_preformatted` and `>` lines become `rich_text_quote`.
//!
//! Shapes: `conformance/slack/events/message/blocks_rich_text.real-capture.json` and
//! <https://docs.slack.dev/reference/block-kit/blocks/rich-text-block>. This is the
//! simulator's own reading of Slack's markup (<https://docs.slack.dev/messaging/formatting-message-text>),
//! independent of the connector's parser.

use serde_json::{Map, Value, json};

use crate::ids::block_id;

/// Builds the rich_text block mirroring `text`.
pub fn from_text(text: &str) -> Value {
    let mut elements = Vec::new();
    let lines: Vec<&str> = text.split('\n').collect();
    let mut i = 0;
    let mut section: Vec<String> = Vec::new();
    let flush = |section: &mut Vec<String>, elements: &mut Vec<Value>| {
        if section.is_empty() {
            return;
        }
        let joined = section.join("\n");
        section.clear();
        let inline = inline(&joined);
        if !inline.is_empty() {
            elements.push(json!({"type": "rich_text_section", "elements": inline}));
        }
    };
    while i < lines.len() {
        let line = lines[i];
        if line.trim_start().starts_with("```") {
            // Collect up to the closing fence (or the end).
            let mut body: Vec<&str> = Vec::new();
            let first = line.trim_start().trim_start_matches("```");
            let mut closed = false;
            if let Some(pos) = first.find("```") {
                body.push(&first[..pos]);
                closed = true;
            } else if !first.is_empty() {
                body.push(first);
            }
            let mut j = i + 1;
            while !closed && j < lines.len() {
                let l = lines[j];
                if let Some(pos) = l.find("```") {
                    if pos > 0 {
                        body.push(&l[..pos]);
                    }
                    closed = true;
                } else {
                    body.push(l);
                }
                j += 1;
            }
            if closed {
                flush(&mut section, &mut elements);
                let code = decode_entities(&body.join("\n"));
                elements.push(json!({
                    "type": "rich_text_preformatted",
                    "elements": [{"type": "text", "text": code}],
                    "border": 0,
                }));
                i = if j > i + 1 { j } else { i + 1 };
                continue;
            }
        }
        if let Some(q) = line
            .strip_prefix("&gt; ")
            .or_else(|| line.strip_prefix("> "))
            .or_else(|| line.strip_prefix("&gt;"))
        {
            flush(&mut section, &mut elements);
            let inline = inline(q);
            elements.push(json!({"type": "rich_text_quote", "elements": inline}));
            i += 1;
            continue;
        }
        section.push(line.to_string());
        i += 1;
    }
    flush(&mut section, &mut elements);
    json!({"type": "rich_text", "block_id": block_id(), "elements": elements})
}

/// Replaces the three entities Slack escapes in `text`.
pub fn decode_entities(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

#[derive(Clone, Copy, Default, PartialEq, Eq)]
struct Style {
    bold: bool,
    italic: bool,
    strike: bool,
    code: bool,
}

impl Style {
    fn to_json(self) -> Option<Value> {
        if self == Style::default() {
            return None;
        }
        let mut m = Map::new();
        if self.bold {
            m.insert("bold".into(), json!(true));
        }
        if self.italic {
            m.insert("italic".into(), json!(true));
        }
        if self.strike {
            m.insert("strike".into(), json!(true));
        }
        if self.code {
            m.insert("code".into(), json!(true));
        }
        Some(Value::Object(m))
    }
}

fn inline(s: &str) -> Vec<Value> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    parse(&chars, Style::default(), &mut out);
    out
}

fn push_text(out: &mut Vec<Value>, text: &str, style: Style) {
    if text.is_empty() {
        return;
    }
    let text = decode_entities(text);
    if let Some(last) = out.last_mut()
        && last.get("type").and_then(Value::as_str) == Some("text")
        && last.get("style") == style.to_json().as_ref()
        && let Some(t) = last.get("text").and_then(Value::as_str)
    {
        let merged = format!("{t}{text}");
        last["text"] = json!(merged);
        return;
    }
    let mut e = json!({"type": "text", "text": text});
    if let Some(st) = style.to_json() {
        e["style"] = st;
    }
    out.push(e);
}

fn with_style(mut e: Value, style: Style) -> Value {
    if let Some(st) = style.to_json() {
        e["style"] = st;
    }
    e
}

fn is_boundary(c: Option<&char>) -> bool {
    match c {
        None => true,
        Some(c) => c.is_whitespace() || "([{\"'.,;:!?-".contains(*c),
    }
}

fn parse(chars: &[char], style: Style, out: &mut Vec<Value>) {
    let mut buf = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        // <…> control sequences.
        if c == '<'
            && let Some(end) = chars[i + 1..].iter().position(|&x| x == '>')
        {
            let inner: String = chars[i + 1..i + 1 + end].iter().collect();
            if let Some(el) = control(&inner) {
                push_text(out, &buf, style);
                buf.clear();
                out.push(with_style(el, style));
                i += end + 2;
                continue;
            }
        }
        // :emoji:
        if c == ':'
            && let Some(end) = chars[i + 1..].iter().position(|&x| x == ':')
        {
            let name: String = chars[i + 1..i + 1 + end].iter().collect();
            if !name.is_empty()
                && name
                    .chars()
                    .all(|x| x.is_ascii_lowercase() || x.is_ascii_digit() || "_+-'".contains(x))
            {
                push_text(out, &buf, style);
                buf.clear();
                let mut e = json!({"type": "emoji", "name": name});
                if let Some(u) = emoji_unicode(&name) {
                    e["unicode"] = json!(u);
                }
                out.push(with_style(e, style));
                i += end + 2;
                continue;
            }
        }
        // *bold* _italic_ ~strike~ `code`
        if matches!(c, '*' | '_' | '~' | '`')
            && is_boundary(if i == 0 { None } else { chars.get(i - 1) })
            && chars
                .get(i + 1)
                .is_some_and(|n| !n.is_whitespace() && *n != c)
        {
            let close = chars[i + 1..]
                .iter()
                .enumerate()
                .position(|(k, &x)| {
                    x == c && !chars[i + k].is_whitespace() && is_boundary(chars.get(i + k + 2))
                })
                .map(|k| i + 1 + k);
            let newline_free = close.is_some_and(|e| !chars[i + 1..e].contains(&'\n'));
            if let (Some(end), true) = (close, newline_free) {
                push_text(out, &buf, style);
                buf.clear();
                let mut inner_style = style;
                match c {
                    '*' => inner_style.bold = true,
                    '_' => inner_style.italic = true,
                    '~' => inner_style.strike = true,
                    _ => inner_style.code = true,
                }
                if c == '`' {
                    let code: String = chars[i + 1..end].iter().collect();
                    push_text(out, &code, inner_style);
                } else {
                    parse(&chars[i + 1..end], inner_style, out);
                }
                i = end + 1;
                continue;
            }
        }
        buf.push(c);
        i += 1;
    }
    push_text(out, &buf, style);
}

/// The element for a `<…>` control sequence, or `None` to keep it as text.
fn control(inner: &str) -> Option<Value> {
    let (target, label) = match inner.split_once('|') {
        Some((a, b)) => (a, Some(b)),
        None => (inner, None),
    };
    if let Some(u) = target.strip_prefix('@') {
        if u.starts_with(['U', 'W', 'B']) && !u.is_empty() {
            return Some(json!({"type": "user", "user_id": u}));
        }
        return None;
    }
    if let Some(c) = target.strip_prefix('#') {
        if c.starts_with(['C', 'G', 'D']) {
            return Some(json!({"type": "channel", "channel_id": c}));
        }
        return None;
    }
    if let Some(special) = target.strip_prefix('!') {
        if let Some(group) = special.strip_prefix("subteam^") {
            return Some(json!({"type": "usergroup", "usergroup_id": group}));
        }
        return match special {
            "here" | "channel" | "everyone" => Some(json!({"type": "broadcast", "range": special})),
            _ => None,
        };
    }
    if target.contains("://") || target.starts_with("mailto:") {
        let mut e = json!({"type": "link", "url": decode_entities(target)});
        if let Some(l) = label {
            e["text"] = json!(decode_entities(l));
        }
        return Some(e);
    }
    None
}

fn emoji_unicode(name: &str) -> Option<&'static str> {
    Some(match name {
        "smile" => "1f604",
        "cat" => "1f431",
        "blush" => "1f60a",
        "+1" | "thumbsup" => "1f44d",
        "-1" | "thumbsdown" => "1f44e",
        "heart" => "2764-fe0f",
        "tada" => "1f389",
        "wave" => "1f44b",
        "joy" => "1f602",
        "white_check_mark" => "2705",
        "eyes" => "1f440",
        "rocket" => "1f680",
        "fire" => "1f525",
        "pray" => "1f64f",
        "slightly_smiling_face" => "1f642",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elements(text: &str) -> Value {
        from_text(text)["elements"].clone()
    }

    #[test]
    fn mirrors_the_real_capture() {
        // conformance/slack/events/envelope/event_callback.real-capture.message_rich_text.json
        let e = elements(
            "<#C043YJGBY49|general> :cat: <@U043H11ES4V> <https://google.com> text text text",
        );
        assert_eq!(
            e,
            json!([{"type": "rich_text_section", "elements": [
                {"type": "channel", "channel_id": "C043YJGBY49"},
                {"type": "text", "text": " "},
                {"type": "emoji", "name": "cat", "unicode": "1f431"},
                {"type": "text", "text": " "},
                {"type": "user", "user_id": "U043H11ES4V"},
                {"type": "text", "text": " "},
                {"type": "link", "url": "https://google.com"},
                {"type": "text", "text": " text text text"},
            ]}])
        );
    }

    #[test]
    fn styles_code_and_quotes() {
        let e = elements("a *b* _c_ ~d~ `e*f*` &lt;g&gt;");
        let s = &e[0]["elements"];
        assert_eq!(
            s[1],
            json!({"type": "text", "text": "b", "style": {"bold": true}})
        );
        assert_eq!(
            s[3],
            json!({"type": "text", "text": "c", "style": {"italic": true}})
        );
        assert_eq!(
            s[5],
            json!({"type": "text", "text": "d", "style": {"strike": true}})
        );
        assert_eq!(
            s[7],
            json!({"type": "text", "text": "e*f*", "style": {"code": true}})
        );
        assert_eq!(s[8], json!({"type": "text", "text": " <g>"}));
        let e = elements("x\n```let a = 1;```\n&gt; quoted");
        assert_eq!(e[1]["type"], "rich_text_preformatted");
        assert_eq!(e[1]["elements"][0]["text"], "let a = 1;");
        assert_eq!(e[2]["type"], "rich_text_quote");
        // Stray markers never panic and stay text.
        for t in [
            "*", "**", "_a", "<", "<@", ":", "a: b :", "```", "`", "<!foo>", "~~",
        ] {
            let _ = from_text(t);
        }
    }
}
