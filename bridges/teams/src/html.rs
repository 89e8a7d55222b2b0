//! Teams message HTML ↔ [`RichText`].
//!
//! A Graph `chatMessage` carries its text in `body` (`itemBody`:
//! `contentType` `text` or `html`) and its mentions beside it in `mentions[]`;
//! the HTML refers to them as `<at id="N">Name</at>`
//! (<https://learn.microsoft.com/en-us/graph/api/resources/chatmessage>,
//! <https://learn.microsoft.com/en-us/graph/api/resources/itembody>,
//! <https://learn.microsoft.com/en-us/graph/api/resources/chatmessagemention>).
//!
//! # Parsing ([`parse`])
//!
//! | HTML | RichText |
//! |---|---|
//! | `<at id="N">` with `mentions[N].mentioned.user` | [`Inline::UserMention`] (`user` = AAD user id, `name` = the `<at>` text) |
//! | `<at id="N">` of a `channel` conversation | [`Inline::ChannelMention`] (`channel` = the Graph channel id) |
//! | `<at id="N">` of a `team` or `chat` conversation (Everyone), or a tag | [`Inline::RoomMention`] |
//! | `<at>` without a matching `mentions[]` entry, or of an application | its text |
//! | `<span itemtype="http://schema.skype.com/Mention" itemid="N">` | as `<at id="N">` (Bot Framework's copy) |
//! | `<emoji id alt title>` | [`Inline::Emoji`] (`name` = `id`, else the title, else the alt; `unicode` = `alt`) |
//! | `<b>`/`<strong>`, `<i>`/`<em>`, `<s>`/`<strike>`/`<del>` | bold, italic, strike |
//! | `<code>` | inline code; `<pre>` and `<codeblock>` are code blocks (language from `class`, `language-x` or `x`; `plaintext` means none) |
//! | `<blockquote>`, `<ul>`/`<ol>`/`<li>` | quote, list |
//! | `<a href>` with an `http`, `https` or `mailto` URL | link (other schemes: the label only) |
//! | `<br>` | line break; `<p>`, `<div>`, headings and table cells are blocks |
//! | `<img src>` | returned in [`ParsedBody::images`] (Graph `hostedContents` URLs are inline images the caller fetches); other images with a safe URL become links |
//! | `<attachment id>` | returned in [`ParsedBody::attachments`] (they refer to `attachments[].id`) |
//! | anything else | its text; `script`, `style` and similar drop their content |
//!
//! Whitespace collapses as in HTML; `&nbsp;` is a real space.
//!
//! # Rendering ([`render`])
//!
//! Only whitelisted tags are written: `p br b i s code a blockquote ul ol li
//! codeblock at`, with the attributes `href`, `id` and `class`, every text and
//! attribute escaped, and links only for `http`, `https` and `mailto`.
//! Mentions of the target bridge's users and channels become `<at id="N">`
//! plus a [`Mention`] for the POST body's `mentions[]`; others are plain
//! `@Name` / `#name` text. Emoji are their Unicode character (custom ones
//! `:name:`), room mentions `@everyone` (Graph needs the conversation id for a
//! real one). Code blocks are `<codeblock class="x"><code>…</code></codeblock>`,
//! the form Teams clients send (`html/graph-message-html-samples.json` #25).
//! Spaces at the edges of text runs and repeated spaces are written as
//! `&nbsp;` so that they survive HTML whitespace collapsing.
//!
//! Round trips: `parse(render(x)) == x` for every `x` in the subset Teams HTML
//! expresses (no emoji elements, no room mentions, mentions only of
//! `bridge`, no links inside links, no whitespace-only paragraphs, code blocks
//! without a trailing newline, no tabs or non-breaking spaces in text).

mod split;

use switchboard_model::dialect::{Dialect, DialectError};
use switchboard_model::html_tree::{self, Element, Node, TokenizerOptions};
use switchboard_model::{Block, BridgeId, ChannelId, Inline, RichText, UserId};

/// How Teams bodies are tokenized: nesting kept to [`MAX_DEPTH`], `<li>` and
/// `<p>` closed only by their end tags, `systemEventMessage` void.
const TOKENIZER: TokenizerOptions = TokenizerOptions {
    max_depth: MAX_DEPTH,
    void_elements: &[
        "br",
        "img",
        "hr",
        "meta",
        "link",
        "input",
        "wbr",
        "col",
        "area",
        "base",
        "source",
        "embed",
        "param",
        "track",
        "systemeventmessage",
    ],
    raw_text_elements: &[
        "script", "style", "title", "template", "noscript", "iframe", "textarea", "xmp",
    ],
    implied_end_tags: false,
    self_closed_raw_text_is_empty: false,
    stray_equals_takes_value: true,
    long_reference_names: true,
};

/// The deepest element nesting kept; deeper start tags are ignored (their
/// text is kept).
const MAX_DEPTH: usize = 64;

/// Graph's message size limit: "Approximately 28 KB per post", including
/// mentions and reactions (`graph/errors-throttling/teams-limits-specifications.md`).
pub const MESSAGE_SIZE_LIMIT: usize = 28 * 1024;

/// The HTML budget [`split_to_limit`] callers should use: the limit minus
/// room for the `mentions[]` JSON, the envelope and later reactions.
pub const DEFAULT_SPLIT_BYTES: usize = 24 * 1024;

/// The bridge id [`TeamsDialect`] parses for.
pub const CONVERT_BRIDGE: &str = "teams:convert";

/// The conversation a mention refers to (`chatMessageMention.mentioned.conversation`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationRef {
    /// The channel, team or chat id.
    pub id: String,
    /// `channel`, `team` or `chat`.
    pub identity_type: String,
}

/// A mention as Graph carries it beside the HTML: `<at id="N">Name</at>`
/// refers to `mentions[N]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mention {
    /// The index used by `<at id="N">`.
    pub id: u32,
    /// `mentionText`: the text inside the `<at>`.
    pub text: String,
    /// The mentioned user's AAD id, for user mentions.
    pub user_id: Option<String>,
    /// The mentioned user's, conversation's or tag's display name.
    pub display_name: String,
    /// The mentioned channel, team or chat, for conversation mentions.
    pub conversation: Option<ConversationRef>,
    /// The mentioned tag's id, for tag mentions.
    pub tag_id: Option<String>,
    /// The mentioned application's id, for bot mentions.
    pub application_id: Option<String>,
}

impl Mention {
    /// Reads one `mentions[]` entry of a chatMessage. `None` when it has no
    /// numeric `id`.
    pub fn from_graph(value: &serde_json::Value) -> Option<Mention> {
        let id = value.get("id").and_then(|v| {
            v.as_u64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        })?;
        let id = u32::try_from(id).ok()?;
        let text = str_at(value, &["mentionText"]).unwrap_or_default();
        let mentioned = value.get("mentioned");
        let field = |kind: &str, key: &str| {
            mentioned
                .and_then(|m| m.get(kind))
                .and_then(|k| k.get(key))
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        };
        let user_id = field("user", "id");
        let conversation = field("conversation", "id").map(|id| ConversationRef {
            id,
            identity_type: field("conversation", "conversationIdentityType").unwrap_or_default(),
        });
        let tag_id = field("tag", "id");
        let application_id = field("application", "id");
        let display_name = field("user", "displayName")
            .or_else(|| field("conversation", "displayName"))
            .or_else(|| field("tag", "displayName"))
            .or_else(|| field("application", "displayName"))
            .unwrap_or_else(|| text.clone());
        Some(Mention {
            id,
            text,
            user_id,
            display_name,
            conversation,
            tag_id,
            application_id,
        })
    }

    /// The `mentions[]` entry for a POST or PATCH body.
    pub fn to_graph(&self) -> serde_json::Value {
        let mentioned = if let Some(user) = &self.user_id {
            serde_json::json!({"user": {"id": user, "displayName": self.display_name, "userIdentityType": "aadUser"}})
        } else if let Some(conv) = &self.conversation {
            serde_json::json!({"conversation": {"id": conv.id, "displayName": self.display_name, "conversationIdentityType": conv.identity_type}})
        } else if let Some(tag) = &self.tag_id {
            serde_json::json!({"tag": {"id": tag, "displayName": self.display_name}})
        } else {
            serde_json::json!({"application": {"id": self.application_id, "displayName": self.display_name}})
        };
        serde_json::json!({"id": self.id, "mentionText": self.text, "mentioned": mentioned})
    }
}

fn str_at(value: &serde_json::Value, path: &[&str]) -> Option<String> {
    let mut v = value;
    for key in path {
        v = v.get(key)?;
    }
    v.as_str().map(str::to_owned)
}

/// A parsed message body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedBody {
    /// The text.
    pub body: RichText,
    /// `src` of every inline image, in order (Graph `…/hostedContents/{id}/$value`
    /// URLs the caller downloads and turns into attachments).
    pub images: Vec<String>,
    /// `id` of every `<attachment id>` placeholder, in order (they name
    /// `attachments[].id` entries: files, cards, meeting references).
    pub attachments: Vec<String>,
}

/// Parses a chatMessage body (`contentType` `html`) into RichText. For
/// `contentType` `text` use [`parse_text`]. Never panics; nesting is bounded.
pub fn parse(html: &str, mentions: &[Mention], bridge: &BridgeId) -> ParsedBody {
    let nodes = html_tree::parse_fragment_with(html, &TOKENIZER);
    let mut cx = ParseCx {
        mentions,
        bridge,
        images: Vec::new(),
        attachments: Vec::new(),
    };
    let blocks = cx.blocks(&nodes, 0);
    let mut body = RichText { blocks };
    body.normalize();
    // Formatting that turned out empty can leave whitespace-only paragraphs.
    drop_blank(&mut body.blocks);
    body.normalize();
    ParsedBody {
        body,
        images: cx.images,
        attachments: cx.attachments,
    }
}

/// Parses a `contentType: text` body.
pub fn parse_text(text: &str) -> RichText {
    RichText::plain(text.trim_end_matches(['\n', '\r']))
}

/// The URL schemes links may have.
pub(crate) fn safe_url(url: &str) -> bool {
    let lower = url.trim().to_ascii_lowercase();
    (lower.starts_with("https://") || lower.starts_with("http://") || lower.starts_with("mailto:"))
        && !url.chars().any(char::is_control)
}

const MAX_BLOCK_DEPTH: usize = 48;

struct ParseCx<'a> {
    mentions: &'a [Mention],
    bridge: &'a BridgeId,
    images: Vec<String>,
    attachments: Vec<String>,
}

/// Inline accumulation with HTML whitespace collapsing.
#[derive(Default)]
struct Para {
    /// At the start of a line: collapsible whitespace is dropped.
    at_line_start: bool,
    /// The last thing written was a collapsible space.
    last_space: bool,
}

impl Para {
    fn new() -> Self {
        Para {
            at_line_start: true,
            last_space: false,
        }
    }
}

fn is_block(name: &str) -> bool {
    matches!(
        name,
        "p" | "div"
            | "blockquote"
            | "ul"
            | "ol"
            | "li"
            | "pre"
            | "codeblock"
            | "h1"
            | "h2"
            | "h3"
            | "h4"
            | "h5"
            | "h6"
            | "table"
            | "thead"
            | "tbody"
            | "tfoot"
            | "tr"
            | "td"
            | "th"
            | "section"
            | "article"
            | "header"
            | "footer"
            | "main"
            | "nav"
            | "aside"
            | "figure"
            | "hr"
            | "dl"
            | "dt"
            | "dd"
            | "address"
    )
}

impl ParseCx<'_> {
    fn blocks(&mut self, nodes: &[Node], depth: usize) -> Vec<Block> {
        let mut out = Vec::new();
        let mut para = Para::new();
        let mut items = Vec::new();
        for node in nodes {
            match node {
                Node::Element(e) if is_block(&e.name) => {
                    flush(&mut items, &mut para, &mut out);
                    self.block(e, depth, &mut out);
                }
                _ => self.inline(node, &mut items, &mut para, depth),
            }
        }
        flush(&mut items, &mut para, &mut out);
        out
    }

    fn block(&mut self, e: &Element, depth: usize, out: &mut Vec<Block>) {
        if depth >= MAX_BLOCK_DEPTH {
            // Too deep: keep the text as a paragraph.
            let mut para = Para::new();
            let mut items = Vec::new();
            push_text(&mut items, &mut para, &text_content(&e.children));
            flush(&mut items, &mut para, out);
            return;
        }
        match e.name.as_str() {
            "blockquote" => out.push(Block::Quote {
                blocks: self.blocks(&e.children, depth + 1),
            }),
            "ul" | "ol" => {
                let mut items: Vec<Vec<Block>> = Vec::new();
                let mut stray: Vec<Node> = Vec::new();
                for child in &e.children {
                    match child {
                        Node::Element(li) if li.name == "li" => {
                            if !stray.is_empty() {
                                items.push(self.blocks(&std::mem::take(&mut stray), depth + 1));
                            }
                            items.push(self.blocks(&li.children, depth + 1));
                        }
                        other => stray.push(other.clone()),
                    }
                }
                if !stray.is_empty() {
                    items.push(self.blocks(&stray, depth + 1));
                }
                out.push(Block::List {
                    ordered: e.name == "ol",
                    items,
                });
            }
            "pre" | "codeblock" => {
                let mut language = class_language(e.attr("class"));
                // `<pre><code class="language-x">`.
                if language.is_none() {
                    for child in &e.children {
                        if let Node::Element(c) = child
                            && c.name == "code"
                        {
                            language = class_language(c.attr("class"));
                        }
                    }
                }
                let mut code = String::new();
                raw_text(&e.children, &mut code, 0);
                let code = code.replace("\r\n", "\n").replace('\u{a0}', " ");
                let code = code.trim_end_matches('\n').to_owned();
                out.push(Block::CodeBlock { language, code });
            }
            "hr" => {}
            "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => {
                let mut para = Para::new();
                let mut content = Vec::new();
                for child in &e.children {
                    self.inline(child, &mut content, &mut para, depth + 1);
                }
                let mut items = vec![Inline::Bold { content }];
                flush(&mut items, &mut para, out);
            }
            _ => out.extend(self.blocks(&e.children, depth + 1)),
        }
    }

    fn inline(&mut self, node: &Node, out: &mut Vec<Inline>, para: &mut Para, depth: usize) {
        let e = match node {
            Node::Text(t) => {
                push_text(out, para, t);
                return;
            }
            Node::Element(e) => e,
        };
        if depth >= MAX_BLOCK_DEPTH {
            push_text(out, para, &text_content(&e.children));
            return;
        }
        let wrap = |content: Vec<Inline>, name: &str| match name {
            "b" | "strong" => Inline::Bold { content },
            "i" | "em" => Inline::Italic { content },
            _ => Inline::Strike { content },
        };
        match e.name.as_str() {
            "b" | "strong" | "i" | "em" | "s" | "strike" | "del" => {
                let mut content = Vec::new();
                self.inlines(&e.children, &mut content, para, depth);
                out.push(wrap(content, &e.name));
            }
            "code" => {
                let mut code = String::new();
                raw_text(&e.children, &mut code, 0);
                let code: String = code
                    .chars()
                    .map(|c| if c.is_whitespace() { ' ' } else { c })
                    .collect();
                if !code.is_empty() {
                    out.push(Inline::Code { code });
                    para.at_line_start = false;
                    para.last_space = false;
                }
            }
            "a" => {
                let href = e.attr("href").map(str::trim).unwrap_or("");
                let mut content = Vec::new();
                self.inlines(&e.children, &mut content, para, depth);
                if safe_url(href) {
                    let mut label = RichText {
                        blocks: vec![Block::Paragraph {
                            content: content.clone(),
                        }],
                    };
                    label.normalize();
                    if label.to_plain().trim() == href {
                        content.clear();
                    }
                    out.push(Inline::Link {
                        url: href.to_owned(),
                        content,
                    });
                    para.at_line_start = false;
                    para.last_space = false;
                } else {
                    out.extend(content);
                }
            }
            "br" => {
                trim_trailing_space(out);
                out.push(Inline::LineBreak);
                para.at_line_start = true;
                para.last_space = false;
            }
            "at" => self.mention(e.attr("id"), &e.children, out, para),
            "span"
                if e.attr("itemtype")
                    .is_some_and(|t| t.contains("schema.skype.com/Mention")) =>
            {
                self.mention(e.attr("itemid"), &e.children, out, para);
            }
            "emoji" => {
                let alt = e.attr("alt").filter(|a| !a.is_empty());
                let name = e
                    .attr("id")
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .or_else(|| {
                        e.attr("title")
                            .filter(|s| !s.is_empty())
                            .map(|t| t.to_lowercase().replace(' ', "_"))
                    })
                    .or_else(|| alt.map(str::to_owned));
                match name {
                    Some(name) => {
                        out.push(Inline::Emoji {
                            name,
                            unicode: alt.map(str::to_owned),
                        });
                        para.at_line_start = false;
                        para.last_space = false;
                    }
                    None => self.inlines(&e.children, out, para, depth),
                }
            }
            "img" => {
                let src = e.attr("src").unwrap_or("").trim();
                if src.contains("hostedContents") {
                    self.images.push(src.to_owned());
                } else if safe_url(src) && !src.to_ascii_lowercase().starts_with("mailto:") {
                    let alt = e.attr("alt").unwrap_or("").trim();
                    let mut content = Vec::new();
                    if !alt.is_empty() && alt != src {
                        content.push(Inline::text(alt));
                    }
                    out.push(Inline::Link {
                        url: src.to_owned(),
                        content,
                    });
                    para.at_line_start = false;
                    para.last_space = false;
                }
            }
            "attachment" => {
                if let Some(id) = e.attr("id").filter(|s| !s.is_empty()) {
                    self.attachments.push(id.to_owned());
                }
                self.inlines(&e.children, out, para, depth);
            }
            name if is_block(name) => {
                // A block inside inline content: keep it on its own line.
                if !para.at_line_start {
                    trim_trailing_space(out);
                    out.push(Inline::LineBreak);
                    para.at_line_start = true;
                    para.last_space = false;
                }
                if name == "pre" || name == "codeblock" {
                    let mut code = String::new();
                    raw_text(&e.children, &mut code, 0);
                    push_text(out, para, &code);
                } else {
                    self.inlines(&e.children, out, para, depth);
                }
                if !para.at_line_start {
                    trim_trailing_space(out);
                    out.push(Inline::LineBreak);
                    para.at_line_start = true;
                    para.last_space = false;
                }
            }
            _ => self.inlines(&e.children, out, para, depth),
        }
    }

    fn inlines(&mut self, nodes: &[Node], out: &mut Vec<Inline>, para: &mut Para, depth: usize) {
        for node in nodes {
            self.inline(node, out, para, depth + 1);
        }
    }

    fn mention(
        &mut self,
        id: Option<&str>,
        children: &[Node],
        out: &mut Vec<Inline>,
        para: &mut Para,
    ) {
        let shown = collapse(&text_content(children));
        let mention = id
            .and_then(|id| id.trim().parse::<u32>().ok())
            .and_then(|id| self.mentions.iter().find(|m| m.id == id));
        let name = if shown.is_empty() {
            mention.map(|m| m.display_name.clone()).unwrap_or_default()
        } else {
            shown.clone()
        };
        let inline = mention.and_then(|m| {
            if let Some(user) = &m.user_id {
                return Some(Inline::UserMention {
                    bridge: self.bridge.clone(),
                    user: UserId::new(user.clone()),
                    name: name.clone(),
                });
            }
            if let Some(conv) = &m.conversation {
                return Some(if conv.identity_type == "channel" {
                    Inline::ChannelMention {
                        bridge: self.bridge.clone(),
                        channel: ChannelId::new(conv.id.clone()),
                        name: name.clone(),
                    }
                } else {
                    Inline::RoomMention
                });
            }
            m.tag_id.as_ref().map(|_| Inline::RoomMention)
        });
        match inline {
            Some(inline) => {
                out.push(inline);
                para.at_line_start = false;
                para.last_space = false;
            }
            None => push_text(out, para, &shown),
        }
    }
}

/// `class="language-rust"`, `class="rust"`, `class="plaintext"` (none).
fn class_language(class: Option<&str>) -> Option<String> {
    let class = class?.split_whitespace().next()?;
    let lang = class.strip_prefix("language-").unwrap_or(class);
    let lang = lang.to_ascii_lowercase();
    if lang.is_empty() || lang == "plaintext" || lang == "text" {
        None
    } else {
        Some(lang)
    }
}

/// All text below `nodes`, `<br>` as `\n`.
fn raw_text(nodes: &[Node], out: &mut String, depth: usize) {
    for node in nodes {
        match node {
            Node::Text(t) => out.push_str(t),
            Node::Element(e) if e.name == "br" => out.push('\n'),
            Node::Element(e) if depth < MAX_BLOCK_DEPTH => raw_text(&e.children, out, depth + 1),
            Node::Element(_) => {}
        }
    }
}

fn text_content(nodes: &[Node]) -> String {
    let mut out = String::new();
    raw_text(nodes, &mut out, 0);
    out
}

/// Collapses whitespace and trims (for mention names).
fn collapse(s: &str) -> String {
    s.replace('\u{a0}', " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Appends text with HTML whitespace collapsing. Non-breaking spaces stay
/// `\u{a0}` until the paragraph is flushed.
fn push_text(out: &mut Vec<Inline>, para: &mut Para, text: &str) {
    let mut buf = String::new();
    for c in text.chars() {
        if c.is_ascii_whitespace() {
            if para.at_line_start || para.last_space {
                continue;
            }
            buf.push(' ');
            para.last_space = true;
        } else {
            buf.push(c);
            para.last_space = false;
            para.at_line_start = false;
        }
    }
    if !buf.is_empty() {
        out.push(Inline::Text { text: buf });
    }
}

/// Removes a trailing collapsible space from the last text run (recursively).
fn trim_trailing_space(items: &mut [Inline]) {
    match items.last_mut() {
        Some(Inline::Text { text }) => {
            let trimmed = text.trim_end_matches(' ').len();
            text.truncate(trimmed);
        }
        Some(
            Inline::Bold { content }
            | Inline::Italic { content }
            | Inline::Strike { content }
            | Inline::Link { content, .. },
        ) => trim_trailing_space(content),
        _ => {}
    }
}

/// Turns non-breaking spaces into spaces.
fn harden_spaces(items: &mut [Inline]) {
    for item in items {
        match item {
            Inline::Text { text } if text.contains('\u{a0}') => {
                *text = text.replace('\u{a0}', " ");
            }
            Inline::Bold { content }
            | Inline::Italic { content }
            | Inline::Strike { content }
            | Inline::Link { content, .. } => harden_spaces(content),
            _ => {}
        }
    }
}

/// Whether the inline content is only whitespace text.
fn blank(items: &[Inline]) -> bool {
    items.iter().all(|i| match i {
        Inline::Text { text } => text.chars().all(|c| c == ' ' || c == '\u{a0}'),
        _ => false,
    })
}

/// Removes whitespace-only paragraphs, recursively.
fn drop_blank(blocks: &mut Vec<Block>) {
    blocks.retain_mut(|block| match block {
        Block::Paragraph { content } => !blank(content),
        Block::Quote { blocks } => {
            drop_blank(blocks);
            true
        }
        Block::List { items, .. } => {
            items.iter_mut().for_each(drop_blank);
            true
        }
        Block::CodeBlock { .. } => true,
    });
}

fn flush(items: &mut Vec<Inline>, para: &mut Para, out: &mut Vec<Block>) {
    let mut items = std::mem::take(items);
    para.at_line_start = true;
    para.last_space = false;
    trim_trailing_space(&mut items);
    if items.is_empty() || blank(&items) {
        return;
    }
    harden_spaces(&mut items);
    out.push(Block::Paragraph { content: items });
}

// ---------------------------------------------------------------- rendering

/// Renders RichText as Teams HTML plus the `mentions[]` for the POST body.
/// See the module docs for what is written.
pub fn render(body: &RichText, bridge: &BridgeId) -> (String, Vec<Mention>) {
    let mut r = Renderer {
        bridge,
        out: String::new(),
        mentions: Vec::new(),
    };
    r.blocks(&body.blocks, 0);
    (r.out, r.mentions)
}

struct Renderer<'a> {
    bridge: &'a BridgeId,
    out: String,
    mentions: Vec<Mention>,
}

impl Renderer<'_> {
    fn blocks(&mut self, blocks: &[Block], depth: usize) {
        for block in blocks {
            match block {
                Block::Paragraph { content } => {
                    self.out.push_str("<p>");
                    self.inlines(content, depth);
                    self.out.push_str("</p>");
                }
                Block::CodeBlock { language, code } => {
                    let class = language
                        .as_deref()
                        .filter(|l| !l.is_empty())
                        .unwrap_or("plaintext");
                    self.out.push_str("<codeblock class=\"");
                    escape_into(class, &mut self.out, true);
                    self.out.push_str("\"><code>");
                    escape_into(code, &mut self.out, false);
                    self.out.push_str("</code></codeblock>");
                }
                Block::Quote { blocks } => {
                    self.out.push_str("<blockquote>");
                    self.blocks(blocks, depth + 1);
                    self.out.push_str("</blockquote>");
                }
                Block::List { ordered, items } => {
                    let tag = if *ordered { "ol" } else { "ul" };
                    self.out.push('<');
                    self.out.push_str(tag);
                    self.out.push('>');
                    for item in items {
                        self.out.push_str("<li>");
                        match item.as_slice() {
                            [Block::Paragraph { content }] => self.inlines(content, depth + 1),
                            blocks => self.blocks(blocks, depth + 1),
                        }
                        self.out.push_str("</li>");
                    }
                    self.out.push_str("</");
                    self.out.push_str(tag);
                    self.out.push('>');
                }
            }
        }
    }

    fn inlines(&mut self, items: &[Inline], depth: usize) {
        for item in items {
            self.inline(item, depth);
        }
    }

    fn wrapped(&mut self, tag: &str, content: &[Inline], depth: usize) {
        self.out.push('<');
        self.out.push_str(tag);
        self.out.push('>');
        self.inlines(content, depth + 1);
        self.out.push_str("</");
        self.out.push_str(tag);
        self.out.push('>');
    }

    fn inline(&mut self, item: &Inline, depth: usize) {
        match item {
            Inline::Text { text } => text_into(text, &mut self.out),
            Inline::Bold { content } => self.wrapped("b", content, depth),
            Inline::Italic { content } => self.wrapped("i", content, depth),
            Inline::Strike { content } => self.wrapped("s", content, depth),
            Inline::Code { code } => {
                self.out.push_str("<code>");
                escape_into(code, &mut self.out, false);
                self.out.push_str("</code>");
            }
            Inline::Link { url, content } => {
                if safe_url(url) {
                    self.out.push_str("<a href=\"");
                    escape_into(url.trim(), &mut self.out, true);
                    self.out.push_str("\">");
                    if content.is_empty() {
                        escape_into(url.trim(), &mut self.out, false);
                    } else {
                        self.inlines(content, depth + 1);
                    }
                    self.out.push_str("</a>");
                } else if content.is_empty() {
                    text_into(url, &mut self.out);
                } else {
                    self.inlines(content, depth + 1);
                }
            }
            Inline::UserMention { bridge, user, name } if bridge == self.bridge => {
                let id = self.next_mention_id();
                self.at(id, name);
                self.mentions.push(Mention {
                    id,
                    text: name.clone(),
                    user_id: Some(user.to_string()),
                    display_name: name.clone(),
                    conversation: None,
                    tag_id: None,
                    application_id: None,
                });
            }
            Inline::UserMention { name, .. } => text_into(&format!("@{name}"), &mut self.out),
            Inline::ChannelMention {
                bridge,
                channel,
                name,
            } if bridge == self.bridge => {
                let id = self.next_mention_id();
                self.at(id, name);
                // Our channel ids are "{team}/{channel}"; Graph wants the channel.
                let channel = channel
                    .as_str()
                    .rsplit_once('/')
                    .map_or(channel.as_str(), |(_, c)| c);
                self.mentions.push(Mention {
                    id,
                    text: name.clone(),
                    user_id: None,
                    display_name: name.clone(),
                    conversation: Some(ConversationRef {
                        id: channel.to_owned(),
                        identity_type: "channel".to_owned(),
                    }),
                    tag_id: None,
                    application_id: None,
                });
            }
            Inline::ChannelMention { name, .. } => text_into(&format!("#{name}"), &mut self.out),
            Inline::RoomMention => text_into("@everyone", &mut self.out),
            Inline::Emoji { name, unicode } => match unicode {
                Some(u) => text_into(u, &mut self.out),
                None => text_into(&format!(":{name}:"), &mut self.out),
            },
            Inline::LineBreak => self.out.push_str("<br>"),
        }
    }

    fn next_mention_id(&self) -> u32 {
        u32::try_from(self.mentions.len()).unwrap_or(u32::MAX)
    }

    fn at(&mut self, id: u32, name: &str) {
        self.out.push_str("<at id=\"");
        self.out.push_str(&id.to_string());
        self.out.push_str("\">");
        escape_into(name, &mut self.out, false);
        self.out.push_str("</at>");
    }
}

/// Escapes `&`, `<`, `>` (and `"`, `'` in attributes).
fn escape_into(s: &str, out: &mut String, attr: bool) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if attr => out.push_str("&quot;"),
            '\'' if attr => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// Escapes a text run; spaces that HTML would collapse (at the run's edges or
/// after another space) become `&nbsp;`.
fn text_into(s: &str, out: &mut String) {
    let chars: Vec<char> = s.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c == ' ' && (i == 0 || i + 1 == chars.len() || chars[i - 1] == ' ') {
            out.push_str("&nbsp;");
        } else if c == '\n' {
            out.push_str("<br>");
        } else {
            escape_into(&c.to_string(), out, false);
        }
    }
}

// ---------------------------------------------------------------- splitting

pub use split::{CONTINUED, MAX_PARTS, TRUNCATED, split_to_limit};

// ---------------------------------------------------------------- dialect

/// Teams HTML as a `switchboard convert` dialect (`teams`), parsed for the
/// bridge [`CONVERT_BRIDGE`]; mentions without a `mentions[]` array keep
/// their text.
#[derive(Debug, Clone, Copy, Default)]
pub struct TeamsDialect;

impl Dialect for TeamsDialect {
    fn name(&self) -> &'static str {
        "teams"
    }

    fn parse(&self, input: &str) -> Result<RichText, DialectError> {
        Ok(parse(input, &[], &BridgeId::new(CONVERT_BRIDGE)).body)
    }

    fn render(&self, body: &RichText) -> String {
        render(body, &BridgeId::new(CONVERT_BRIDGE)).0
    }
}

#[cfg(test)]
mod tests;
