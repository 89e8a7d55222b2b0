//! RichText → `formatted_body` HTML (see the parent module's docs).
//!
//! Rendering lowers the tree first into what Matrix HTML can show (mentions
//! resolved to pills or text, emoji and room mentions to text, unsafe or
//! nested links to their labels, adjacent text merged), then writes it, so
//! that whitespace can be encoded against HTML's collapsing rules exactly as
//! the parser applies them.

use super::{
    FormatContext, matrix_to, safe_url, split_room_mentions, valid_room_id, valid_user_id,
};
use switchboard_model::{Block, Inline, RichText};

/// The deepest HTML element nesting written, well below the parser's bound;
/// deeper formatting is dropped and deeper blocks become plain paragraphs.
const MAX_HTML_DEPTH: usize = 80;

/// The HTML and what it mentions.
pub(super) struct Html {
    pub(super) html: String,
    pub(super) mentioned_users: Vec<String>,
    pub(super) room_mention: bool,
    /// What a plain body of the same text reads as, when plain text can say
    /// it all (no formatting, links, code, pills or blocks but paragraphs).
    pub(super) plain_equivalent: Option<RichText>,
}

pub(super) fn render_html(text: &RichText, ctx: &FormatContext<'_>) -> Html {
    let mut lower = Lower {
        ctx,
        mentioned_users: Vec::new(),
        room_mention: false,
    };
    let blocks = lower.blocks(&text.blocks, 0);
    let plain_equivalent = plain_equivalent(&blocks);
    let mut writer = Writer {
        html: String::new(),
        line_start: true,
        last_space: false,
    };
    writer.blocks(&blocks, true);
    Html {
        html: writer.html,
        mentioned_users: lower.mentioned_users,
        room_mention: lower.room_mention,
        plain_equivalent,
    }
}

enum RBlock {
    Para(Vec<RNode>),
    Code {
        language: Option<String>,
        code: String,
    },
    Quote(Vec<RBlock>),
    List {
        ordered: bool,
        items: Vec<Vec<RBlock>>,
    },
}

enum RNode {
    /// Text; `nbsp_end` when its last character is a space at the end of a
    /// line (HTML would drop it).
    Text {
        text: String,
        nbsp_end: bool,
    },
    Bold(Vec<RNode>),
    Italic(Vec<RNode>),
    Strike(Vec<RNode>),
    Code(String),
    /// A safe link; an empty label shows the URL.
    Link {
        url: String,
        content: Vec<RNode>,
    },
    Pill {
        href: String,
        label: String,
    },
    Break,
}

struct Lower<'c, 'a> {
    ctx: &'c FormatContext<'a>,
    mentioned_users: Vec<String>,
    room_mention: bool,
}

impl Lower<'_, '_> {
    fn blocks(&mut self, blocks: &[Block], depth: usize) -> Vec<RBlock> {
        let mut out = Vec::new();
        for block in blocks {
            if depth + 3 > MAX_HTML_DEPTH {
                // Too deep: its plain rendering as a paragraph.
                let plain = RichText {
                    blocks: vec![block.clone()],
                }
                .to_plain();
                let mut content = Vec::new();
                push_text(&mut content, &plain);
                self.paragraph(content, &mut out);
                continue;
            }
            match block {
                Block::Paragraph { content } => {
                    let mut nodes = Vec::new();
                    self.inlines(content, false, depth + 1, &mut nodes);
                    self.paragraph(nodes, &mut out);
                }
                Block::CodeBlock { language, code } => out.push(RBlock::Code {
                    language: language
                        .as_ref()
                        .filter(|l| !l.is_empty() && !l.chars().any(char::is_whitespace))
                        .cloned(),
                    code: code.clone(),
                }),
                Block::Quote { blocks } => {
                    let inner = self.blocks(blocks, depth + 1);
                    if !inner.is_empty() {
                        out.push(RBlock::Quote(inner));
                    }
                }
                Block::List { ordered, items } => {
                    let items: Vec<Vec<RBlock>> = items
                        .iter()
                        .map(|item| self.blocks(item, depth + 2))
                        .filter(|item| !item.is_empty())
                        .collect();
                    if !items.is_empty() {
                        out.push(RBlock::List {
                            ordered: *ordered,
                            items,
                        });
                    }
                }
            }
        }
        out
    }

    fn paragraph(&mut self, mut nodes: Vec<RNode>, out: &mut Vec<RBlock>) {
        if !nodes.is_empty() {
            mark_line_ends(&mut nodes, &mut true);
            out.push(RBlock::Para(nodes));
        }
    }

    fn inlines(&mut self, items: &[Inline], in_link: bool, depth: usize, out: &mut Vec<RNode>) {
        for item in items {
            self.inline(item, in_link, depth, out);
        }
    }

    fn wrapped(
        &mut self,
        content: &[Inline],
        in_link: bool,
        depth: usize,
        out: &mut Vec<RNode>,
        wrap: fn(Vec<RNode>) -> RNode,
    ) {
        if depth + 1 > MAX_HTML_DEPTH {
            self.inlines(content, in_link, depth, out);
            return;
        }
        let mut inner = Vec::new();
        self.inlines(content, in_link, depth + 1, &mut inner);
        if !inner.is_empty() {
            out.push(wrap(inner));
        }
    }

    fn inline(&mut self, item: &Inline, in_link: bool, depth: usize, out: &mut Vec<RNode>) {
        match item {
            Inline::Text { text } => push_text(out, text),
            Inline::Bold { content } => self.wrapped(content, in_link, depth, out, RNode::Bold),
            Inline::Italic { content } => {
                self.wrapped(content, in_link, depth, out, RNode::Italic);
            }
            Inline::Strike { content } => {
                self.wrapped(content, in_link, depth, out, RNode::Strike);
            }
            Inline::Code { code } => {
                if !code.is_empty() {
                    out.push(RNode::Code(code.clone()));
                }
            }
            Inline::Link { url, content } => {
                if in_link || !safe_url(url) || depth + 1 > MAX_HTML_DEPTH {
                    if content.is_empty() {
                        push_text(out, url);
                    } else {
                        self.inlines(content, in_link, depth, out);
                    }
                } else {
                    let mut inner = Vec::new();
                    self.inlines(content, true, depth + 1, &mut inner);
                    out.push(RNode::Link {
                        url: url.clone(),
                        content: inner,
                    });
                }
            }
            Inline::UserMention { bridge, user, name } => {
                let mxid = if bridge == self.ctx.bridge {
                    Some(user.as_str().to_owned())
                } else {
                    (self.ctx.ghost_of)(bridge, user)
                };
                match mxid.filter(|m| valid_user_id(m)) {
                    Some(mxid) if !in_link => {
                        let href = matrix_to(&mxid);
                        let label = if name.trim().is_empty() {
                            mxid.clone()
                        } else {
                            name.clone()
                        };
                        if !self.mentioned_users.contains(&mxid) {
                            self.mentioned_users.push(mxid);
                        }
                        out.push(RNode::Pill { href, label });
                    }
                    _ => push_text(out, &format!("@{name}")),
                }
            }
            Inline::ChannelMention {
                bridge,
                channel,
                name,
            } => {
                if bridge == self.ctx.bridge && valid_room_id(channel.as_str()) && !in_link {
                    let label = if name.trim().is_empty() {
                        channel.to_string()
                    } else {
                        name.clone()
                    };
                    out.push(RNode::Pill {
                        href: matrix_to(channel.as_str()),
                        label,
                    });
                } else {
                    push_text(out, &format!("#{name}"));
                }
            }
            Inline::RoomMention => {
                self.room_mention = true;
                push_text(out, "@room");
            }
            Inline::Emoji { name, unicode } => match unicode {
                Some(u) => push_text(out, u),
                None => push_text(out, &format!(":{name}:")),
            },
            Inline::LineBreak => out.push(RNode::Break),
        }
    }
}

/// Appends text, merged with text before it; `\n` becomes a break.
fn push_text(out: &mut Vec<RNode>, text: &str) {
    for (n, part) in text.split('\n').enumerate() {
        if n > 0 {
            out.push(RNode::Break);
        }
        if part.is_empty() {
            continue;
        }
        if let Some(RNode::Text { text: prev, .. }) = out.last_mut() {
            prev.push_str(part);
        } else {
            out.push(RNode::Text {
                text: part.to_owned(),
                nbsp_end: false,
            });
        }
    }
}

/// Marks text whose last space ends a line (walking backwards).
fn mark_line_ends(nodes: &mut [RNode], at_end: &mut bool) {
    for node in nodes.iter_mut().rev() {
        match node {
            RNode::Text { text, nbsp_end } => {
                if *at_end && text.ends_with(|c: char| c.is_ascii_whitespace()) {
                    *nbsp_end = true;
                }
                if !text.is_empty() {
                    *at_end = false;
                }
            }
            RNode::Bold(content) | RNode::Italic(content) | RNode::Strike(content) => {
                mark_line_ends(content, at_end);
            }
            RNode::Link { content, .. } => {
                mark_line_ends(content, at_end);
                *at_end = false;
            }
            RNode::Break => *at_end = true,
            RNode::Code(_) | RNode::Pill { .. } => *at_end = false,
        }
    }
}

/// The RichText a plain body says, when the lowered text is plain paragraphs.
fn plain_equivalent(blocks: &[RBlock]) -> Option<RichText> {
    let mut out = Vec::new();
    for block in blocks {
        let RBlock::Para(nodes) = block else {
            return None;
        };
        let mut content = Vec::new();
        for node in nodes {
            match node {
                RNode::Text { text, .. } => content.push(Inline::text(text)),
                RNode::Break => content.push(Inline::LineBreak),
                _ => return None,
            }
        }
        split_room_mentions(&mut content);
        out.push(Block::Paragraph { content });
    }
    let mut text = RichText { blocks: out };
    text.normalize();
    Some(text)
}

struct Writer {
    html: String,
    /// At the start of a line: a space here would collapse.
    line_start: bool,
    /// The last character written was a collapsible space.
    last_space: bool,
}

impl Writer {
    fn blocks(&mut self, blocks: &[RBlock], bare_single_paragraph: bool) {
        if bare_single_paragraph && let [RBlock::Para(content)] = blocks {
            self.paragraph(content);
            return;
        }
        for block in blocks {
            match block {
                RBlock::Para(content) => {
                    self.html.push_str("<p>");
                    self.paragraph(content);
                    self.html.push_str("</p>");
                }
                RBlock::Code { language, code } => {
                    self.html.push_str("<pre><code");
                    if let Some(language) = language {
                        self.html.push_str(" class=\"language-");
                        escape_into(language, &mut self.html, true);
                        self.html.push('"');
                    }
                    self.html.push('>');
                    escape_into(code, &mut self.html, false);
                    self.html.push_str("</code></pre>");
                }
                RBlock::Quote(inner) => {
                    self.html.push_str("<blockquote>");
                    self.blocks(inner, true);
                    self.html.push_str("</blockquote>");
                }
                RBlock::List { ordered, items } => {
                    let tag = if *ordered { "ol" } else { "ul" };
                    self.open(tag);
                    for item in items {
                        self.html.push_str("<li>");
                        self.blocks(item, true);
                        self.html.push_str("</li>");
                    }
                    self.close(tag);
                }
            }
        }
    }

    fn open(&mut self, tag: &str) {
        self.html.push('<');
        self.html.push_str(tag);
        self.html.push('>');
    }

    fn close(&mut self, tag: &str) {
        self.html.push_str("</");
        self.html.push_str(tag);
        self.html.push('>');
    }

    fn paragraph(&mut self, content: &[RNode]) {
        self.line_start = true;
        self.last_space = false;
        self.inlines(content);
    }

    fn shown(&mut self) {
        self.line_start = false;
        self.last_space = false;
    }

    fn inlines(&mut self, nodes: &[RNode]) {
        for node in nodes {
            match node {
                RNode::Text { text, nbsp_end } => self.text(text, *nbsp_end),
                RNode::Bold(content) => self.wrapped("strong", content),
                RNode::Italic(content) => self.wrapped("em", content),
                RNode::Strike(content) => self.wrapped("del", content),
                RNode::Code(code) => {
                    self.html.push_str("<code>");
                    escape_into(code, &mut self.html, false);
                    self.html.push_str("</code>");
                    self.shown();
                }
                RNode::Link { url, content } => {
                    self.html.push_str("<a href=\"");
                    escape_into(url, &mut self.html, true);
                    self.html.push_str("\">");
                    if content.is_empty() {
                        escape_into(url, &mut self.html, false);
                        self.shown();
                    } else {
                        self.inlines(content);
                    }
                    self.html.push_str("</a>");
                }
                RNode::Pill { href, label } => {
                    self.html.push_str("<a href=\"");
                    escape_into(href, &mut self.html, true);
                    self.html.push_str("\">");
                    escape_into(label, &mut self.html, false);
                    self.html.push_str("</a>");
                    self.shown();
                }
                RNode::Break => {
                    self.html.push_str("<br>");
                    self.line_start = true;
                    self.last_space = false;
                }
            }
        }
    }

    fn wrapped(&mut self, tag: &str, content: &[RNode]) {
        self.open(tag);
        self.inlines(content);
        self.close(tag);
    }

    /// Text with spaces HTML would collapse written as `&nbsp;`.
    fn text(&mut self, text: &str, nbsp_end: bool) {
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            if c.is_ascii_whitespace() {
                let last = chars.peek().is_none();
                if self.line_start || self.last_space || (last && nbsp_end) {
                    self.html.push_str("&nbsp;");
                    self.shown();
                } else {
                    self.html.push(' ');
                    self.last_space = true;
                }
            } else {
                let mut buf = [0u8; 4];
                escape_into(c.encode_utf8(&mut buf), &mut self.html, false);
                self.shown();
            }
        }
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
