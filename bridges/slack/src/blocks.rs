//! Slack `rich_text` blocks to [`RichText`] and back.
//!
//! Slack clients send a message's formatting twice: as mrkdwn `text` and as
//! a `rich_text` block, which is exact (no escaping, no ambiguous markers).
//! Switchboard reads the block when there is one and posts one alongside the
//! mrkdwn text so Slack shows the formatting exactly.
//!
//! Slack documentation: <https://docs.slack.dev/reference/block-kit/blocks/rich-text-block>
//!
//! # Shape
//!
//! A `rich_text` block holds `elements`: `rich_text_section` (inline
//! elements), `rich_text_list` (`style` `bullet`/`ordered`, `indent`, its
//! `elements` are one section per item), `rich_text_quote` (inline elements)
//! and `rich_text_preformatted` (inline elements, read as plain code).
//! Inline elements are `text` (with `style` `bold`/`italic`/`strike`/`code`),
//! `link` (`url`, optional `text`), `user`, `channel`, `usergroup`,
//! `broadcast` (`range` here/channel/everyone), `emoji` (`name`, `unicode`
//! as hex code points like `1f44d`, optional `skin_tone`), `date` and
//! `color`. Newlines live inside text; a blank line separates paragraphs.
//!
//! Slack nests lists by `indent` on consecutive flat lists; they are rebuilt
//! into nested [`Block::List`]s (indent capped, deeper lists flattened).
//! Unknown element types degrade to their `text`; nothing here panics on
//! any JSON value. Styles nest bold ⊃ italic ⊃ strike, so for every body in
//! the subset blocks can express, `parse_rich_text(render_rich_text(x))` is
//! `x`.

use crate::emoji;
use crate::mrkdwn::{MAX_LIST_DEPTH, emoji_shortcode, is_id};
use crate::names::Names;
use serde_json::{Map, Value, json};
use switchboard_model::{Block, BridgeId, ChannelId, Inline, RichText, UserId};

/// The deepest list `indent` read or written.
const MAX_INDENT: usize = MAX_LIST_DEPTH - 1;

/// Parses a message's `blocks` array. `Some` when it holds `rich_text`
/// blocks (their content, normalised; possibly empty), `None` when it holds
/// none (the caller then reads the mrkdwn `text`). User and channel elements
/// become mentions on `bridge`, named by `names` (else by id).
pub fn parse_rich_text(blocks: &Value, bridge: &BridgeId, names: &dyn Names) -> Option<RichText> {
    let reader = Reader { bridge, names };
    let mut found = false;
    let mut out = Vec::new();
    for block in blocks.as_array()? {
        let Some(block) = block.as_object() else {
            continue;
        };
        if str_field(block, "type") != "rich_text" {
            continue;
        }
        found = true;
        reader.container(array_field(block, "elements"), &mut out);
    }
    if !found {
        return None;
    }
    let mut body = RichText { blocks: out };
    body.normalize();
    Some(body)
}

/// Renders [`RichText`] as one `rich_text` block. Mentions of `bridge`'s
/// users and channels become `user`/`channel` elements, others text
/// (`@Name`, `#name`); room mentions `broadcast` `here`. Code blocks lose
/// their language; nested quotes and lists or code inside quotes and list
/// items, which Slack's format cannot hold, are flattened into text.
pub fn render_rich_text(body: &RichText, bridge: &BridgeId) -> Value {
    let mut body = body.clone();
    body.normalize();
    let writer = Writer { bridge };
    let mut elements = Vec::new();
    writer.blocks(&body.blocks, &mut elements);
    json!({ "type": "rich_text", "elements": elements })
}

// ---------------------------------------------------------------------------
// Reading.

/// The string in `obj[key]`, or `""`.
fn str_field<'v>(obj: &'v Map<String, Value>, key: &str) -> &'v str {
    obj.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// The array in `obj[key]`, or an empty slice.
fn array_field<'v>(obj: &'v Map<String, Value>, key: &str) -> &'v [Value] {
    obj.get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// Bold, italic, strike.
type Style = [bool; 3];

/// One inline element with its style.
#[derive(Debug, Clone)]
struct Run {
    style: Style,
    inline: Inline,
}

/// A `rich_text_list` element, before nesting is rebuilt.
#[derive(Debug, Clone)]
struct ListChunk {
    indent: usize,
    ordered: bool,
    items: Vec<Vec<Block>>,
}

struct Reader<'a> {
    bridge: &'a BridgeId,
    names: &'a dyn Names,
}

impl Reader<'_> {
    /// Reads a `rich_text` block's elements.
    fn container(&self, elements: &[Value], out: &mut Vec<Block>) {
        let mut lists: Vec<ListChunk> = Vec::new();
        for element in elements {
            let Some(obj) = element.as_object() else {
                continue;
            };
            let kind = str_field(obj, "type");
            if kind == "rich_text_list" {
                lists.push(self.list_chunk(obj));
                continue;
            }
            out.extend(build_lists(&std::mem::take(&mut lists)));
            match kind {
                "rich_text_section" => {
                    out.extend(paragraphs(self.runs(array_field(obj, "elements"))))
                }
                "rich_text_quote" => {
                    let blocks = paragraphs(self.runs(array_field(obj, "elements")));
                    if !blocks.is_empty() {
                        out.push(Block::Quote { blocks });
                    }
                }
                "rich_text_preformatted" => {
                    let code = self.code(array_field(obj, "elements"));
                    if !code.is_empty() {
                        out.push(Block::CodeBlock {
                            language: None,
                            code,
                        });
                    }
                }
                // Something else: keep whatever text it has.
                _ => {
                    let runs = match obj.get("elements").and_then(Value::as_array) {
                        Some(inner) => self.runs(inner),
                        None => self.element(obj),
                    };
                    out.extend(paragraphs(runs));
                }
            }
        }
        out.extend(build_lists(&lists));
    }

    /// Reads a `rich_text_list`: one item per section.
    fn list_chunk(&self, obj: &Map<String, Value>) -> ListChunk {
        let indent = obj.get("indent").and_then(Value::as_u64).map_or(0, |i| {
            usize::try_from(i).unwrap_or(MAX_INDENT).min(MAX_INDENT)
        });
        let items = array_field(obj, "elements")
            .iter()
            .filter_map(Value::as_object)
            .map(
                |section| match section.get("elements").and_then(Value::as_array) {
                    Some(inner) => paragraphs(self.runs(inner)),
                    None => paragraphs(self.element(section)),
                },
            )
            .collect();
        ListChunk {
            indent,
            ordered: str_field(obj, "style") == "ordered",
            items,
        }
    }

    /// Reads inline elements.
    fn runs(&self, elements: &[Value]) -> Vec<Run> {
        elements
            .iter()
            .filter_map(Value::as_object)
            .flat_map(|e| self.element(e))
            .collect()
    }

    /// Reads one inline element (several runs when its text has newlines).
    fn element(&self, obj: &Map<String, Value>) -> Vec<Run> {
        let style_obj = obj.get("style").and_then(Value::as_object);
        let flag = |key: &str| {
            style_obj
                .and_then(|s| s.get(key))
                .and_then(Value::as_bool)
                .unwrap_or(false)
        };
        let style = [flag("bold"), flag("italic"), flag("strike")];
        let code = flag("code");
        let one = |inline: Inline| vec![Run { style, inline }];
        match str_field(obj, "type") {
            "text" => text_runs(str_field(obj, "text"), style, code),
            "link" => {
                let url = str_field(obj, "url");
                let label = str_field(obj, "text");
                if url.is_empty() {
                    return text_runs(label, style, code);
                }
                let content = if label.is_empty() || label == url {
                    Vec::new()
                } else {
                    vec![Inline::text(label.replace('\n', " "))]
                };
                one(Inline::Link {
                    url: url.to_owned(),
                    content,
                })
            }
            "user" => {
                let id = str_field(obj, "user_id");
                if id.is_empty() {
                    return Vec::new();
                }
                let name = self.names.user(id).unwrap_or_else(|| id.to_owned());
                one(Inline::UserMention {
                    bridge: self.bridge.clone(),
                    user: UserId::new(id),
                    name,
                })
            }
            "channel" => {
                let id = str_field(obj, "channel_id");
                if id.is_empty() {
                    return Vec::new();
                }
                let name = self.names.channel(id).unwrap_or_else(|| id.to_owned());
                one(Inline::ChannelMention {
                    bridge: self.bridge.clone(),
                    channel: ChannelId::new(id),
                    name,
                })
            }
            "usergroup" => {
                let id = str_field(obj, "usergroup_id");
                text_runs(&format!("@{id}"), style, false)
            }
            "broadcast" => one(Inline::RoomMention),
            "emoji" => match emoji_inline(obj) {
                Some(inline) => one(inline),
                None => Vec::new(),
            },
            "date" => {
                let fallback = str_field(obj, "fallback");
                if !fallback.is_empty() {
                    return text_runs(fallback, style, false);
                }
                match obj.get("timestamp").and_then(Value::as_i64) {
                    Some(ts) => text_runs(&utc(ts), style, false),
                    None => Vec::new(),
                }
            }
            "color" => text_runs(str_field(obj, "value"), style, false),
            _ => text_runs(str_field(obj, "text"), style, code),
        }
    }

    /// A preformatted block's text: every element as plain text, without
    /// trailing newlines.
    fn code(&self, elements: &[Value]) -> String {
        let mut code = String::new();
        for run in self.runs(elements) {
            match run.inline {
                Inline::Text { text } | Inline::Code { code: text } => code.push_str(&text),
                Inline::LineBreak => code.push('\n'),
                Inline::Link { url, content } => {
                    if content.is_empty() {
                        code.push_str(&url);
                    } else {
                        code.push_str(&plain(&content));
                    }
                }
                other => code.push_str(&plain(&[other])),
            }
        }
        code.trim_end_matches('\n').to_owned()
    }
}

/// Text (or code) runs for a string, newlines as line breaks.
fn text_runs(text: &str, style: Style, code: bool) -> Vec<Run> {
    let mut runs = Vec::new();
    for (k, part) in text.split('\n').enumerate() {
        if k > 0 {
            runs.push(Run {
                style,
                inline: Inline::LineBreak,
            });
        }
        if !part.is_empty() {
            let inline = if code {
                Inline::Code { code: part.into() }
            } else {
                Inline::text(part)
            };
            runs.push(Run { style, inline });
        }
    }
    runs
}

/// An `emoji` element: its name (with `::skin-tone-N` when it has one) and
/// Unicode (from `unicode`, else from the name).
fn emoji_inline(obj: &Map<String, Value>) -> Option<Inline> {
    let name = str_field(obj, "name");
    let hex_unicode = obj
        .get("unicode")
        .and_then(Value::as_str)
        .and_then(from_hex);
    if name.is_empty() {
        return hex_unicode.map(Inline::text);
    }
    let tone = obj
        .get("skin_tone")
        .and_then(Value::as_u64)
        .filter(|t| (2..=6).contains(t));
    let name = match tone {
        Some(t) if !name.contains("::") => format!("{name}::skin-tone-{t}"),
        _ => name.to_owned(),
    };
    let unicode = hex_unicode.or_else(|| emoji::to_unicode(&name));
    Some(Inline::Emoji { name, unicode })
}

/// `1f44d-1f3fb` to the characters, if every part is a code point.
fn from_hex(hex: &str) -> Option<String> {
    if hex.is_empty() {
        return None;
    }
    hex.split('-')
        .map(|part| u32::from_str_radix(part, 16).ok().and_then(char::from_u32))
        .collect()
}

/// Characters as `1f44d-1f3fb`.
fn to_hex(s: &str) -> String {
    let parts: Vec<String> = s.chars().map(|c| format!("{:x}", u32::from(c))).collect();
    parts.join("-")
}

/// A Unix time as `YYYY-MM-DD HH:MM UTC`.
fn utc(ts: i64) -> String {
    let days = ts.div_euclid(86_400);
    let secs = ts.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        secs / 3600,
        secs % 3600 / 60
    )
}

/// Splits runs into paragraphs at blank lines (dropping line breaks at the
/// edges) and nests each paragraph's styles.
fn paragraphs(runs: Vec<Run>) -> Vec<Block> {
    let mut out = Vec::new();
    let mut current: Vec<Run> = Vec::new();
    let mut breaks: Vec<Run> = Vec::new();
    for run in runs {
        if matches!(run.inline, Inline::LineBreak) {
            breaks.push(run);
            continue;
        }
        if breaks.len() >= 2 {
            if !current.is_empty() {
                out.push(Block::Paragraph {
                    content: group(&current, 0),
                });
                current.clear();
            }
        } else if let Some(brk) = breaks.first()
            && !current.is_empty()
        {
            current.push(brk.clone());
        }
        breaks.clear();
        current.push(run);
    }
    if !current.is_empty() {
        out.push(Block::Paragraph {
            content: group(&current, 0),
        });
    }
    out
}

/// Nests styled runs: bold outermost, then italic, then strike; adjacent
/// runs sharing a style share one node.
fn group(runs: &[Run], level: usize) -> Vec<Inline> {
    if level >= 3 {
        return runs.iter().map(|r| r.inline.clone()).collect();
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i < runs.len() {
        let on = runs[i].style[level];
        let mut j = i;
        while j < runs.len() && runs[j].style[level] == on {
            j += 1;
        }
        let inner = group(&runs[i..j], level + 1);
        if on {
            out.push(match level {
                0 => Inline::Bold { content: inner },
                1 => Inline::Italic { content: inner },
                _ => Inline::Strike { content: inner },
            });
        } else {
            out.extend(inner);
        }
        i = j;
    }
    out
}

/// Rebuilds nested lists from consecutive `rich_text_list` elements: a list
/// indented deeper than the one before belongs to that one's last item; a
/// list continuing at the same indent and style continues the same list.
fn build_lists(chunks: &[ListChunk]) -> Vec<Block> {
    let mut out: Vec<Block> = Vec::new();
    let Some(base) = chunks.first().map(|c| c.indent) else {
        return out;
    };
    let mut i = 0;
    while i < chunks.len() {
        let chunk = &chunks[i];
        let mut j = i + 1;
        while j < chunks.len() && chunks[j].indent > base {
            j += 1;
        }
        let mut items = chunk.items.clone();
        if j > i + 1 {
            if items.is_empty() {
                items.push(Vec::new());
            }
            if let Some(last) = items.last_mut() {
                for nested in build_lists(&chunks[i + 1..j]) {
                    attach(last, nested);
                }
            }
        }
        attach(
            &mut out,
            Block::List {
                ordered: chunk.ordered,
                items,
            },
        );
        i = j;
    }
    out
}

/// Appends a list to blocks, continuing a list of the same kind just before it.
fn attach(blocks: &mut Vec<Block>, block: Block) {
    if let (
        Some(Block::List { ordered, items }),
        Block::List {
            ordered: o,
            items: more,
        },
    ) = (blocks.last_mut(), &block)
        && ordered == o
    {
        items.extend(more.iter().cloned());
        return;
    }
    blocks.push(block);
}

/// Plain text of inline content.
fn plain(items: &[Inline]) -> String {
    RichText {
        blocks: vec![Block::Paragraph {
            content: items.to_vec(),
        }],
    }
    .to_plain()
}

// ---------------------------------------------------------------------------
// Writing.

struct Writer<'a> {
    bridge: &'a BridgeId,
}

impl Writer<'_> {
    fn blocks(&self, blocks: &[Block], out: &mut Vec<Value>) {
        let mut paragraphs: Vec<&[Inline]> = Vec::new();
        for block in blocks {
            if let Block::Paragraph { content } = block {
                paragraphs.push(content);
                continue;
            }
            self.flush_section(&mut paragraphs, out);
            match block {
                Block::Paragraph { .. } => {}
                Block::CodeBlock { code, .. } => {
                    if !code.is_empty() {
                        out.push(json!({
                            "type": "rich_text_preformatted",
                            "elements": [{ "type": "text", "text": code }],
                        }));
                    }
                }
                Block::Quote { blocks } => {
                    let mut elements = Vec::new();
                    self.flat(blocks, &mut elements);
                    if !elements.is_empty() {
                        out.push(json!({ "type": "rich_text_quote", "elements": elements }));
                    }
                }
                Block::List { ordered, items } => self.list(*ordered, items, 0, out),
            }
        }
        self.flush_section(&mut paragraphs, out);
    }

    /// Writes pending paragraphs as one section (blank lines between).
    fn flush_section(&self, paragraphs: &mut Vec<&[Inline]>, out: &mut Vec<Value>) {
        if paragraphs.is_empty() {
            return;
        }
        let mut elements = Vec::new();
        for (n, content) in paragraphs.drain(..).enumerate() {
            if n > 0 {
                push_text(&mut elements, "\n\n", [false; 3], false);
            }
            self.inlines(content, [false; 3], &mut elements);
        }
        out.push(json!({ "type": "rich_text_section", "elements": elements }));
    }

    /// A list at `indent`: items as sections; an item's nested lists follow
    /// as deeper lists, after which the list continues as a new element.
    fn list(&self, ordered: bool, items: &[Vec<Block>], indent: usize, out: &mut Vec<Value>) {
        let style = if ordered { "ordered" } else { "bullet" };
        let mut chunk: Vec<Value> = Vec::new();
        let mut offset = 0;
        let flush = |chunk: &mut Vec<Value>, offset: &mut usize, out: &mut Vec<Value>| {
            if chunk.is_empty() {
                return;
            }
            let mut list = json!({
                "type": "rich_text_list",
                "style": style,
                "indent": indent,
                "elements": std::mem::take(chunk),
            });
            if ordered && *offset > 0 {
                list["offset"] = json!(*offset);
            }
            *offset += list["elements"].as_array().map_or(0, Vec::len);
            out.push(list);
        };
        for item in items {
            let lead = item
                .iter()
                .take_while(|b| matches!(b, Block::Paragraph { .. }))
                .count();
            let mut elements = Vec::new();
            for (n, block) in item[..lead].iter().enumerate() {
                if let Block::Paragraph { content } = block {
                    if n > 0 {
                        push_text(&mut elements, "\n\n", [false; 3], false);
                    }
                    self.inlines(content, [false; 3], &mut elements);
                }
            }
            chunk.push(json!({ "type": "rich_text_section", "elements": elements }));
            for block in &item[lead..] {
                match block {
                    Block::List {
                        ordered: nested_ordered,
                        items: nested,
                    } => {
                        flush(&mut chunk, &mut offset, out);
                        let deeper = (indent + 1).min(MAX_INDENT);
                        self.list(*nested_ordered, nested, deeper, out);
                    }
                    // Slack's lists hold only sections: anything else
                    // becomes an item of its own text.
                    other => {
                        let mut elements = Vec::new();
                        self.flat(std::slice::from_ref(other), &mut elements);
                        chunk.push(json!({ "type": "rich_text_section", "elements": elements }));
                    }
                }
            }
        }
        flush(&mut chunk, &mut offset, out);
    }

    /// Blocks as inline elements (for quotes): paragraphs separated by blank
    /// lines; nested quotes flattened, lists as `•` lines, code as code.
    fn flat(&self, blocks: &[Block], out: &mut Vec<Value>) {
        for block in blocks {
            if !out.is_empty() {
                push_text(out, "\n\n", [false; 3], false);
            }
            match block {
                Block::Paragraph { content } => self.inlines(content, [false; 3], out),
                Block::CodeBlock { code, .. } => {
                    for (k, line) in code.split('\n').enumerate() {
                        if k > 0 {
                            push_text(out, "\n", [false; 3], false);
                        }
                        if !line.is_empty() {
                            push_text(out, line, [false; 3], true);
                        }
                    }
                }
                Block::Quote { blocks } => self.flat(blocks, out),
                Block::List { ordered, items } => {
                    for (n, item) in items.iter().enumerate() {
                        if n > 0 {
                            push_text(out, "\n", [false; 3], false);
                        }
                        let marker = if *ordered {
                            format!("{}. ", n + 1)
                        } else {
                            "• ".to_owned()
                        };
                        push_text(out, &marker, [false; 3], false);
                        let mut inner = Vec::new();
                        self.flat(item, &mut inner);
                        for element in inner {
                            push_element(out, element);
                        }
                    }
                }
            }
        }
    }

    /// Inline content as elements, with the styles around it.
    fn inlines(&self, items: &[Inline], style: Style, out: &mut Vec<Value>) {
        for item in items {
            match item {
                Inline::Text { text } => push_text(out, text, style, false),
                Inline::LineBreak => push_text(out, "\n", style, false),
                Inline::Bold { content } => self.inlines(content, with(style, 0), out),
                Inline::Italic { content } => self.inlines(content, with(style, 1), out),
                Inline::Strike { content } => self.inlines(content, with(style, 2), out),
                Inline::Code { code } => {
                    let code = code.replace('\n', " ");
                    if !code.is_empty() {
                        push_text(out, &code, style, true);
                    }
                }
                Inline::Link { url, content } => {
                    let mut element = json!({ "type": "link", "url": url });
                    let label = plain(content).replace('\n', " ");
                    if !label.is_empty() && label != *url {
                        element["text"] = json!(label);
                    }
                    set_style(&mut element, style, false);
                    out.push(element);
                }
                Inline::UserMention { bridge, user, name } => {
                    if bridge == self.bridge && is_id(user.as_str()) {
                        let mut element = json!({ "type": "user", "user_id": user.as_str() });
                        set_style(&mut element, style, false);
                        out.push(element);
                    } else {
                        push_text(out, &format!("@{name}"), style, false);
                    }
                }
                Inline::ChannelMention {
                    bridge,
                    channel,
                    name,
                } => {
                    if bridge == self.bridge && is_id(channel.as_str()) {
                        let mut element =
                            json!({ "type": "channel", "channel_id": channel.as_str() });
                        set_style(&mut element, style, false);
                        out.push(element);
                    } else {
                        push_text(out, &format!("#{name}"), style, false);
                    }
                }
                Inline::RoomMention => out.push(json!({ "type": "broadcast", "range": "here" })),
                Inline::Emoji { name, unicode } => {
                    match emoji_shortcode(name, unicode.as_deref()) {
                        Some(shortcode) => out.push(emoji_element(&shortcode)),
                        None => match unicode {
                            Some(u) => push_text(out, u, style, false),
                            None => push_text(out, &format!(":{name}:"), style, false),
                        },
                    }
                }
            }
        }
    }
}

/// A style with one more flag set.
fn with(mut style: Style, index: usize) -> Style {
    style[index] = true;
    style
}

/// Sets an element's `style` (when any flag is on).
fn set_style(element: &mut Value, style: Style, code: bool) {
    let mut flags = Map::new();
    for (on, key) in [
        (style[0], "bold"),
        (style[1], "italic"),
        (style[2], "strike"),
        (code, "code"),
    ] {
        if on {
            flags.insert(key.into(), Value::Bool(true));
        }
    }
    if !flags.is_empty() {
        element["style"] = Value::Object(flags);
    }
}

/// Appends a text element, joining a text element of the same style before it.
fn push_text(out: &mut Vec<Value>, text: &str, style: Style, code: bool) {
    let mut element = json!({ "type": "text", "text": text });
    set_style(&mut element, style, code);
    push_element(out, element);
}

/// Appends an element, joining adjacent text elements of the same style.
fn push_element(out: &mut Vec<Value>, element: Value) {
    if element["type"] == "text"
        && let Some(last) = out.last_mut()
        && last["type"] == "text"
        && last.get("style") == element.get("style")
        && let (Some(a), Some(b)) = (last["text"].as_str(), element["text"].as_str())
    {
        let joined = format!("{a}{b}");
        last["text"] = Value::String(joined);
        return;
    }
    out.push(element);
}

/// An `emoji` element for a Slack shortcode (`wave::skin-tone-3` becomes
/// `name` + `skin_tone`).
fn emoji_element(shortcode: &str) -> Value {
    let unicode = emoji::to_unicode(shortcode);
    let (name, tone) = match shortcode.split_once("::skin-tone-") {
        Some((base, t)) if t.len() == 1 => (base, t.parse::<u64>().ok()),
        _ => (shortcode, None),
    };
    let mut element = json!({ "type": "emoji", "name": name });
    if let Some(u) = unicode {
        element["unicode"] = json!(to_hex(&u));
    }
    if let Some(t) = tone {
        element["skin_tone"] = json!(t);
    }
    element
}
