//! Matrix message formatting ↔ [`RichText`].
//!
//! An `m.room.message` (`msgtype` `m.text`, `m.notice` or `m.emote`) carries
//! its text as `body` (plain text, always present) and optionally as
//! `formatted_body` with `format: "org.matrix.custom.html"`, an HTML subset
//! (Client-Server API, "m.room.message msgtypes" and "HTML subset"). Mentions
//! are *pills*, links to `https://matrix.to/#/@user:server`, with the
//! mentioned ids repeated in `m.mentions` (`user_ids`, `room`).
//!
//! # Parsing ([`parse`])
//!
//! With a non-empty `formatted_body` the HTML is the text and `body` is
//! ignored (unless the HTML turns out empty); the caller passes
//! `formatted_body` only when `format` is `org.matrix.custom.html`. Without it
//! the plain `body` is the text: blank lines separate paragraphs, other
//! newlines are line breaks, and markdown-looking characters stay as they
//! are.
//!
//! | HTML | RichText |
//! |---|---|
//! | `<a href="https://matrix.to/#/@u:s">Name</a>` (or `matrix:u/u:s`) | [`Inline::UserMention`]: of the ghost's person when [`FormatContext::person_of_ghost`] knows the id, else of the Matrix user on [`FormatContext::bridge`]; `name` = the link text |
//! | `<a href="https://matrix.to/#/!room:s">` (or `matrix:roomid/…`) | [`Inline::ChannelMention`] on [`FormatContext::bridge`] |
//! | `@room` in text | [`Inline::RoomMention`] |
//! | `<a href>` with an `https`, `http`, `ftp`, `mailto` or `magnet` URL | link (a label equal to the URL means "show the URL"); other schemes (`javascript:`, `data:`…): the label only |
//! | `<b>`/`<strong>`, `<i>`/`<em>`, `<del>`/`<strike>`/`<s>` | bold, italic, strike |
//! | `<u>`, `<font>`, `<span>` (also spoilers), `<sup>`, `<sub>` and unknown elements | their content |
//! | `<code>` | inline code; `<pre>` is a code block, its language from `class="language-x"` on the `<pre>` or its `<code>` |
//! | `<blockquote>`, `<ul>`/`<ol>`/`<li>` | quote, list (`ol start` is not kept: RichText numbers from 1) |
//! | `<h1>`…`<h6>` | a paragraph in bold |
//! | `<br>` | line break; `<p>`, `<div>`, tables, `<details>`/`<summary>` are blocks; `<hr>` only separates |
//! | `<img data-mx-emoticon alt=":name:">` | [`Inline::Emoji`] without Unicode (a custom emoji) |
//! | other `<img>` | its `alt` (or `title`) text, else a link to an `http(s)` `src`, else nothing (`mxc://` needs a download) |
//! | `<mx-reply>` (a reply fallback) | dropped |
//! | `script`, `style`, `iframe`, `object`, `embed`, `svg`, `math`, media… | dropped with their content |
//!
//! Attributes other than `href`, `class`, `src`, `alt`, `title` and
//! `data-mx-emoticon` are never read, so event handlers and styles go nowhere.
//! Whitespace collapses as in HTML; `&nbsp;` is a real space. Nesting is
//! bounded (100 levels), nothing panics on any input and the
//! work is linear in the input.
//!
//! A plain `body` that starts with a reply fallback (`> <@user:server> …`
//! lines followed by a blank line) has it stripped.
//!
//! # Rendering ([`render`])
//!
//! `body` is always [`RichText::to_plain`]. `formatted_body` is written only
//! when the plain body would not read back as the same text (formatting,
//! links, code, quotes, lists, pills…). It uses only `p br strong em del code
//! pre blockquote ul ol li a` with the attributes `href` (`https`, `http`,
//! `ftp`, `mailto`, `magnet`, or a `https://matrix.to/#/` pill) and `class`
//! (`language-x` on `<code>` in `<pre>`), every text and attribute escaped.
//! A mention of a Matrix user of this bridge is a pill to them; a mention of
//! someone elsewhere is a pill to their ghost ([`FormatContext::ghost_of`]) or
//! plain `@Name` text when they have none. Pills are listed in
//! [`Rendered::mentioned_users`] for `m.mentions`; a room mention is `@room`
//! and sets [`Rendered::room_mention`]. Channel mentions of this bridge's rooms
//! are room pills, others `#name`; emoji are their character (custom ones
//! `:name:`). Spaces HTML would collapse (at line edges, repeated) are written
//! as `&nbsp;`. No reply fallback is ever written.
//!
//! Round trips: `parse(render(x)) == x` for every `x` Matrix can express:
//! mentions only of this bridge's users or of people with ghosts, no pills
//! inside links, no links inside links, no emoji elements, room mentions not
//! glued to letters (`a@room` is text), no whitespace-only paragraphs, code
//! without a trailing newline, no tabs or non-breaking spaces in text.

mod html_in;
mod html_out;

use std::fmt;
use switchboard_model::dialect::{Dialect, DialectError};
use switchboard_model::{Block, BridgeId, Inline, RichText, UserId};

/// The `format` value of HTML bodies.
pub const HTML_FORMAT: &str = "org.matrix.custom.html";

/// The bridge id [`MatrixDialect`] parses for.
pub const CONVERT_BRIDGE: &str = "matrix:convert";

/// The server name [`MatrixDialect`] assumes.
pub const CONVERT_SERVER: &str = "convert.invalid";

/// How ids map: which Matrix user ids are people of other platforms (ghosts)
/// and how to name a mentioned person in Matrix.
pub struct FormatContext<'a> {
    /// This Matrix bridge: mentions of real Matrix users are on it.
    pub bridge: &'a BridgeId,
    /// The homeserver's name (`example.org`).
    pub server_name: &'a str,
    /// The Matrix user id of a person's ghost, if they have one.
    pub ghost_of: &'a dyn Fn(&BridgeId, &UserId) -> Option<String>,
    /// The person a Matrix user id is the ghost of, if it is a ghost.
    pub person_of_ghost: &'a dyn Fn(&str) -> Option<(BridgeId, UserId)>,
}

impl fmt::Debug for FormatContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FormatContext")
            .field("bridge", self.bridge)
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

/// RichText as Matrix content fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rendered {
    /// The plain rendering (`body`), mentions as `@Name`.
    pub body: String,
    /// The HTML (`formatted_body`, `format: "org.matrix.custom.html"`), when
    /// the message has formatting or pills.
    pub formatted_body: Option<String>,
    /// The users pilled in `formatted_body`, in order, without repeats
    /// (`m.mentions.user_ids`).
    pub mentioned_users: Vec<String>,
    /// Whether the message mentions the whole room (`m.mentions.room`).
    pub room_mention: bool,
}

/// What a Matrix message's content says, as RichText. See the module docs.
pub fn parse(body: &str, formatted_body: Option<&str>, ctx: &FormatContext<'_>) -> RichText {
    if let Some(html) = formatted_body {
        let text = html_in::parse_html(html, ctx);
        if !text.is_empty() {
            return text;
        }
    }
    parse_plain(strip_reply_fallback(body))
}

/// RichText as Matrix content fields. See the module docs.
pub fn render(text: &RichText, ctx: &FormatContext<'_>) -> Rendered {
    let html = html_out::render_html(text, ctx);
    let body = text.to_plain();
    let formatted_body = match html.plain_equivalent {
        Some(expected) if parse_plain(&body) == expected => None,
        _ => Some(html.html),
    };
    Rendered {
        body,
        formatted_body,
        mentioned_users: html.mentioned_users,
        room_mention: html.room_mention,
    }
}

/// A plain body: paragraphs and line breaks, `@room` as a room mention.
fn parse_plain(body: &str) -> RichText {
    let mut text = RichText::plain(body.trim_end_matches(['\n', '\r']));
    for block in &mut text.blocks {
        if let Block::Paragraph { content } = block {
            split_room_mentions(content);
        }
    }
    text.normalize();
    text
}

/// `body` without a leading reply fallback: lines starting with `>` of which
/// the first is `> <@user…` (or `> * <@user…` for emotes), then a blank line.
fn strip_reply_fallback(body: &str) -> &str {
    if !(body.starts_with("> <@") || body.starts_with("> * <@")) {
        return body;
    }
    let mut rest = body;
    while rest.starts_with('>') {
        match rest.find('\n') {
            Some(nl) => rest = &rest[nl + 1..],
            None => return body,
        }
    }
    // Without a blank line after the quote it is not a fallback.
    rest.strip_prefix("\r\n")
        .or_else(|| rest.strip_prefix('\n'))
        .unwrap_or(body)
}

/// Splits `@room` out of text runs (not code) as [`Inline::RoomMention`],
/// when it is not glued to a word before it or to a word, `-`, `:` or `@`
/// after it (`a@room`, `@roomy`, `@room:server` stay text).
pub(crate) fn split_room_mentions(items: &mut Vec<Inline>) {
    let old = std::mem::take(items);
    for item in old {
        match item {
            Inline::Text { text } if text.contains("@room") => split_room_text(&text, items),
            Inline::Bold { mut content } => {
                split_room_mentions(&mut content);
                items.push(Inline::Bold { content });
            }
            Inline::Italic { mut content } => {
                split_room_mentions(&mut content);
                items.push(Inline::Italic { content });
            }
            Inline::Strike { mut content } => {
                split_room_mentions(&mut content);
                items.push(Inline::Strike { content });
            }
            Inline::Link { url, mut content } => {
                split_room_mentions(&mut content);
                items.push(Inline::Link { url, content });
            }
            other => items.push(other),
        }
    }
}

fn split_room_text(text: &str, out: &mut Vec<Inline>) {
    const NEEDLE: &str = "@room";
    let mut start = 0;
    let mut search = 0;
    while let Some(pos) = text.get(search..).and_then(|t| t.find(NEEDLE)) {
        let at = search + pos;
        let end = at + NEEDLE.len();
        let before_ok = text[..at]
            .chars()
            .next_back()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
        let after_ok = text[end..]
            .chars()
            .next()
            .is_none_or(|c| !(c.is_alphanumeric() || matches!(c, '_' | '-' | ':' | '@')));
        if before_ok && after_ok {
            if at > start {
                out.push(Inline::text(&text[start..at]));
            }
            out.push(Inline::RoomMention);
            start = end;
            search = end;
        } else {
            search = at + 1;
        }
    }
    if start < text.len() {
        out.push(Inline::text(&text[start..]));
    }
}

/// The URL schemes links may have.
pub(crate) fn safe_url(url: &str) -> bool {
    const SCHEMES: [&str; 5] = ["https://", "http://", "ftp://", "mailto:", "magnet:"];
    !url.chars().any(|c| c.is_control() || c.is_whitespace())
        && SCHEMES
            .iter()
            .any(|s| strip_prefix_ci(url, s).is_some_and(|rest| !rest.is_empty()))
}

fn strip_prefix_ci<'s>(s: &'s str, prefix: &str) -> Option<&'s str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// What a pill points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PillTarget {
    /// A user id (`@alice:example.org`).
    User(String),
    /// A room id (`!abc:example.org`).
    Room(String),
}

const MATRIX_TO: &str = "https://matrix.to/#/";

/// The user or room a pill's `href` points at: `https://matrix.to/#/ID`
/// (percent-encoded, `?via=` allowed) or `matrix:u/…` / `matrix:roomid/…`.
/// Event permalinks and aliases are not pills.
pub(crate) fn pill_target(href: &str) -> Option<PillTarget> {
    let id = if let Some(rest) =
        strip_prefix_ci(href, MATRIX_TO).or_else(|| strip_prefix_ci(href, "http://matrix.to/#/"))
    {
        let raw = rest.split('?').next().unwrap_or("");
        if raw.contains('/') {
            return None;
        }
        percent_decode(raw)
    } else if let Some(rest) = strip_prefix_ci(href, "matrix:") {
        let raw = rest.split(['?', '#']).next().unwrap_or("");
        let mut parts = raw.split('/');
        let kind = parts.next().unwrap_or("");
        let id = percent_decode(parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        match kind {
            "u" => format!("@{id}"),
            "roomid" => format!("!{id}"),
            _ => return None,
        }
    } else {
        return None;
    };
    if valid_user_id(&id) {
        Some(PillTarget::User(id))
    } else if valid_room_id(&id) {
        Some(PillTarget::Room(id))
    } else {
        None
    }
}

fn plausible_id(id: &str) -> bool {
    id.len() > 1 && id.len() <= 255 && !id.chars().any(|c| c.is_control() || c.is_whitespace())
}

/// `@localpart:server`.
pub(crate) fn valid_user_id(id: &str) -> bool {
    plausible_id(id)
        && id
            .strip_prefix('@')
            .and_then(|rest| rest.split_once(':'))
            .is_some_and(|(local, server)| !local.is_empty() && !server.is_empty())
}

/// `!opaque` or `!opaque:server` (room version 12 ids carry no server).
pub(crate) fn valid_room_id(id: &str) -> bool {
    plausible_id(id) && id.starts_with('!') && !id.contains('/')
}

/// The `matrix.to` link of a user or room id.
pub(crate) fn matrix_to(id: &str) -> String {
    let mut out = String::from(MATRIX_TO);
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~!$'()*+,;=:@".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_owned();
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

// ---------------------------------------------------------------- dialect

/// Matrix message content as a `switchboard convert` dialect (`matrix`),
/// parsed for the bridge [`CONVERT_BRIDGE`] with no ghosts. Parsing reads a
/// JSON object `{"body": …, "formatted_body": …}` (a `format` other than
/// `org.matrix.custom.html` means the HTML is ignored) or, for anything that
/// is not a JSON object, plain text. Rendering writes the content object:
/// `msgtype`, `body`, and `format` + `formatted_body` when there is HTML,
/// `m.mentions` when there are mentions.
#[derive(Debug, Clone, Copy, Default)]
pub struct MatrixDialect;

fn with_convert_context<R>(f: impl FnOnce(&FormatContext<'_>) -> R) -> R {
    let bridge = BridgeId::new(CONVERT_BRIDGE);
    let ctx = FormatContext {
        bridge: &bridge,
        server_name: CONVERT_SERVER,
        ghost_of: &|_, _| None,
        person_of_ghost: &|_| None,
    };
    f(&ctx)
}

impl Dialect for MatrixDialect {
    fn name(&self) -> &'static str {
        "matrix"
    }

    fn parse(&self, input: &str) -> Result<RichText, DialectError> {
        let object = match serde_json::from_str::<serde_json::Value>(input) {
            Ok(serde_json::Value::Object(map)) => Some(map),
            _ => None,
        };
        let Some(map) = object else {
            return Ok(with_convert_context(|ctx| parse(input, None, ctx)));
        };
        let field = |key: &str| map.get(key).and_then(serde_json::Value::as_str);
        let body = field("body");
        let html_format = field("format").is_none_or(|f| f == HTML_FORMAT);
        let formatted = field("formatted_body").filter(|_| html_format);
        if body.is_none() && formatted.is_none() {
            return Err(DialectError {
                dialect: "matrix",
                reason: "a message content object needs a string \"body\"".to_owned(),
            });
        }
        Ok(with_convert_context(|ctx| {
            parse(body.unwrap_or(""), formatted, ctx)
        }))
    }

    fn render(&self, body: &RichText) -> String {
        let rendered = with_convert_context(|ctx| render(body, ctx));
        let mut content = serde_json::Map::new();
        content.insert("msgtype".to_owned(), "m.text".into());
        content.insert("body".to_owned(), rendered.body.into());
        if let Some(html) = rendered.formatted_body {
            content.insert("format".to_owned(), HTML_FORMAT.into());
            content.insert("formatted_body".to_owned(), html.into());
        }
        if !rendered.mentioned_users.is_empty() || rendered.room_mention {
            let mut mentions = serde_json::Map::new();
            if !rendered.mentioned_users.is_empty() {
                mentions.insert("user_ids".to_owned(), rendered.mentioned_users.into());
            }
            if rendered.room_mention {
                mentions.insert("room".to_owned(), true.into());
            }
            content.insert("m.mentions".to_owned(), mentions.into());
        }
        serde_json::to_string_pretty(&serde_json::Value::Object(content)).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests;
