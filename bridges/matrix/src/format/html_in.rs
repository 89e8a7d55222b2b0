//! `formatted_body` HTML → RichText (see the parent module's table).

use super::{FormatContext, PillTarget, pill_target, safe_url, split_room_mentions};
use switchboard_model::html_tree::{self, Element, Node};
use switchboard_model::{Block, ChannelId, Inline, RichText, UserId};

/// The deepest element nesting kept.
const MAX_DEPTH: usize = 100;

/// Parses a `formatted_body`. Never panics; nesting is bounded by the tokenizer.
pub(super) fn parse_html(html: &str, ctx: &FormatContext<'_>) -> RichText {
    let nodes = html_tree::parse_fragment(html, MAX_DEPTH);
    let mut parser = Parser {
        ctx,
        visible: false,
    };
    let blocks = parser.blocks(&nodes);
    let mut text = RichText { blocks };
    text.normalize();
    text
}

/// Elements dropped with everything inside them.
fn is_dropped(name: &str) -> bool {
    matches!(
        name,
        "mx-reply"
            | "object"
            | "applet"
            | "embed"
            | "svg"
            | "math"
            | "audio"
            | "video"
            | "canvas"
            | "select"
            | "datalist"
            | "head"
            | "frameset"
            | "frame"
            | "input"
    )
}

/// Elements that are blocks of their own.
fn is_block(name: &str) -> bool {
    matches!(
        name,
        "p" | "div"
            | "blockquote"
            | "ul"
            | "ol"
            | "li"
            | "pre"
            | "h1"
            | "h2"
            | "h3"
            | "h4"
            | "h5"
            | "h6"
            | "hr"
            | "table"
            | "thead"
            | "tbody"
            | "tfoot"
            | "tr"
            | "td"
            | "th"
            | "caption"
            | "details"
            | "summary"
            | "section"
            | "article"
            | "header"
            | "footer"
            | "main"
            | "nav"
            | "aside"
            | "figure"
            | "figcaption"
            | "dl"
            | "dt"
            | "dd"
            | "address"
            | "center"
            | "form"
            | "fieldset"
            | "legend"
    )
}

struct Parser<'c, 'a> {
    ctx: &'c FormatContext<'a>,
    /// Something visible was added to the current line (for blocks met
    /// inside inline content, which get lines of their own).
    visible: bool,
}

impl Parser<'_, '_> {
    fn blocks<'n>(&mut self, nodes: impl IntoIterator<Item = &'n Node>) -> Vec<Block> {
        let mut out = Vec::new();
        let mut items = Vec::new();
        for node in nodes {
            match node {
                Node::Element(e) if is_dropped(&e.name) => {}
                Node::Element(e) if is_block(&e.name) => {
                    self.flush(&mut items, &mut out);
                    self.block(e, &mut out);
                }
                _ => self.inline(node, &mut items, false),
            }
        }
        self.flush(&mut items, &mut out);
        out
    }

    fn block(&mut self, e: &Element, out: &mut Vec<Block>) {
        match e.name.as_str() {
            "blockquote" => out.push(Block::Quote {
                blocks: self.blocks(&e.children),
            }),
            "ul" | "ol" => {
                let mut items: Vec<Vec<Block>> = Vec::new();
                let mut stray: Vec<&Node> = Vec::new();
                for child in &e.children {
                    match child {
                        Node::Element(li) if li.name == "li" => {
                            if !stray.is_empty() {
                                items.push(self.blocks(std::mem::take(&mut stray)));
                            }
                            items.push(self.blocks(&li.children));
                        }
                        other => stray.push(other),
                    }
                }
                if !stray.is_empty() {
                    items.push(self.blocks(stray));
                }
                out.push(Block::List {
                    ordered: e.name == "ol",
                    items,
                });
            }
            "pre" => out.push(code_block(e)),
            "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => {
                let mut content = Vec::new();
                self.inlines(&e.children, &mut content, false);
                let mut items = vec![Inline::Bold { content }];
                self.flush(&mut items, out);
            }
            "hr" => {}
            _ => {
                let blocks = self.blocks(&e.children);
                out.extend(blocks);
            }
        }
    }

    /// Ends the current paragraph.
    fn flush(&mut self, items: &mut Vec<Inline>, out: &mut Vec<Block>) {
        self.visible = false;
        let content = std::mem::take(items);
        if let Some(content) = finish_paragraph(content) {
            out.push(Block::Paragraph { content });
        }
    }

    fn inlines(&mut self, nodes: &[Node], out: &mut Vec<Inline>, in_link: bool) {
        for node in nodes {
            self.inline(node, out, in_link);
        }
    }

    fn collect(&mut self, nodes: &[Node], in_link: bool) -> Vec<Inline> {
        let mut content = Vec::new();
        self.inlines(nodes, &mut content, in_link);
        content
    }

    fn push_text(&mut self, out: &mut Vec<Inline>, text: &str) {
        if text.is_empty() {
            return;
        }
        if text.chars().any(|c| !c.is_ascii_whitespace()) {
            self.visible = true;
        }
        out.push(Inline::text(text));
    }

    fn line_break(&mut self, out: &mut Vec<Inline>) {
        out.push(Inline::LineBreak);
        self.visible = false;
    }

    fn inline(&mut self, node: &Node, out: &mut Vec<Inline>, in_link: bool) {
        let e = match node {
            Node::Text(t) => {
                self.push_text(out, t);
                return;
            }
            Node::Element(e) => e,
        };
        match e.name.as_str() {
            name if is_dropped(name) => {}
            "b" | "strong" => {
                let content = self.collect(&e.children, in_link);
                out.push(Inline::Bold { content });
            }
            "i" | "em" => {
                let content = self.collect(&e.children, in_link);
                out.push(Inline::Italic { content });
            }
            "del" | "strike" | "s" => {
                let content = self.collect(&e.children, in_link);
                out.push(Inline::Strike { content });
            }
            "code" => {
                let mut code = String::new();
                raw_text(&e.children, &mut code);
                let code: String = code
                    .chars()
                    .map(|c| if c.is_whitespace() { ' ' } else { c })
                    .collect();
                if !code.is_empty() {
                    out.push(Inline::Code { code });
                    self.visible = true;
                }
            }
            "a" => self.link(e, out, in_link),
            "br" => self.line_break(out),
            "img" => self.image(e, out, in_link),
            name if is_block(name) => {
                // A block inside inline content: on lines of its own.
                if self.visible {
                    self.line_break(out);
                }
                if name == "pre" {
                    let mut code = String::new();
                    raw_text(&e.children, &mut code);
                    for (n, line) in code.split('\n').enumerate() {
                        if n > 0 {
                            self.line_break(out);
                        }
                        self.push_text(out, line);
                    }
                } else {
                    self.inlines(&e.children, out, in_link);
                }
                if self.visible {
                    self.line_break(out);
                }
            }
            _ => self.inlines(&e.children, out, in_link),
        }
    }

    fn link(&mut self, e: &Element, out: &mut Vec<Inline>, in_link: bool) {
        if in_link {
            // Links do not nest: an inner link is its label.
            self.inlines(&e.children, out, true);
            return;
        }
        let href = e.attr("href").map(str::trim).unwrap_or("");
        if let Some(target) = pill_target(href) {
            let mut label = String::new();
            raw_text(&e.children, &mut label);
            let label = collapse(&label);
            out.push(match target {
                PillTarget::User(mxid) => {
                    let name = if label.is_empty() {
                        mxid.clone()
                    } else {
                        label
                    };
                    let (bridge, user) = (self.ctx.person_of_ghost)(&mxid)
                        .unwrap_or_else(|| (self.ctx.bridge.clone(), UserId::new(mxid)));
                    Inline::UserMention { bridge, user, name }
                }
                PillTarget::Room(id) => Inline::ChannelMention {
                    bridge: self.ctx.bridge.clone(),
                    name: if label.is_empty() { id.clone() } else { label },
                    channel: ChannelId::new(id),
                },
            });
            self.visible = true;
        } else if safe_url(href) {
            let content = self.collect(&e.children, true);
            out.push(Inline::Link {
                url: href.to_owned(),
                content,
            });
            self.visible = true;
        } else {
            self.inlines(&e.children, out, false);
        }
    }

    fn image(&mut self, e: &Element, out: &mut Vec<Inline>, in_link: bool) {
        let nonempty = |key: &str| e.attr(key).map(str::trim).filter(|v| !v.is_empty());
        let label = nonempty("alt").or_else(|| nonempty("title"));
        if e.attr("data-mx-emoticon").is_some()
            && let Some(name) = label.and_then(shortcode)
        {
            out.push(Inline::Emoji {
                name,
                unicode: None,
            });
            self.visible = true;
            return;
        }
        if let Some(label) = label {
            self.push_text(out, label);
            return;
        }
        let src = e.attr("src").map(str::trim).unwrap_or("");
        let web = super::strip_prefix_ci(src, "https://").is_some()
            || super::strip_prefix_ci(src, "http://").is_some();
        if !in_link && web && safe_url(src) {
            out.push(Inline::Link {
                url: src.to_owned(),
                content: Vec::new(),
            });
            self.visible = true;
        }
    }
}

/// `:name:` (or a bare `name`) as an emoji name.
fn shortcode(label: &str) -> Option<String> {
    let name = label
        .strip_prefix(':')
        .and_then(|l| l.strip_suffix(':'))
        .unwrap_or(label);
    (!name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == ':'))
        .then(|| name.to_owned())
}

/// A `<pre>` as a code block.
fn code_block(e: &Element) -> Block {
    let language = class_language(e.attr("class")).or_else(|| {
        e.children.iter().find_map(|child| match child {
            Node::Element(c) if c.name == "code" => class_language(c.attr("class")),
            _ => None,
        })
    });
    let mut code = String::new();
    raw_text(&e.children, &mut code);
    // As in HTML, a newline right after `<pre>` is not content.
    if matches!(e.children.first(), Some(Node::Text(_))) {
        if let Some(rest) = code.strip_prefix("\r\n") {
            code = rest.to_owned();
        } else if let Some(rest) = code.strip_prefix('\n') {
            code = rest.to_owned();
        }
    }
    let code = code.replace("\r\n", "\n").replace('\u{a0}', " ");
    Block::CodeBlock {
        language,
        code: code.trim_end_matches('\n').to_owned(),
    }
}

/// The `x` of the first `language-x` class.
fn class_language(class: Option<&str>) -> Option<String> {
    class?
        .split_whitespace()
        .find_map(|c| c.strip_prefix("language-"))
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
}

/// All text below `nodes`, `<br>` as `\n`, dropped elements skipped.
fn raw_text(nodes: &[Node], out: &mut String) {
    for node in nodes {
        match node {
            Node::Text(t) => out.push_str(t),
            Node::Element(e) if e.name == "br" => out.push('\n'),
            Node::Element(e) if is_dropped(&e.name) => {}
            Node::Element(e) => raw_text(&e.children, out),
        }
    }
}

/// Collapses whitespace (non-breaking spaces too) and trims.
fn collapse(s: &str) -> String {
    s.split(|c: char| c.is_whitespace())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whitespace collapsing, trimming, then `@room` detection and link labels:
/// the paragraph in normal form, or None when it shows nothing.
fn finish_paragraph(mut content: Vec<Inline>) -> Option<Vec<Inline>> {
    let mut forward = Forward {
        line_start: true,
        last_space: false,
    };
    collapse_forward(&mut content, &mut forward);
    trim_line_ends(&mut content, &mut true);
    harden_spaces(&mut content);
    let mut para = RichText {
        blocks: vec![Block::Paragraph { content }],
    };
    para.normalize();
    let Some(Block::Paragraph { mut content }) = para.blocks.pop() else {
        return None;
    };
    if !shows_something(&content) {
        return None;
    }
    clear_url_labels(&mut content);
    split_room_mentions(&mut content);
    Some(content)
}

struct Forward {
    line_start: bool,
    last_space: bool,
}

/// HTML whitespace collapsing: runs of ASCII whitespace become one space,
/// none at the start of a line.
fn collapse_forward(items: &mut [Inline], st: &mut Forward) {
    for item in items {
        match item {
            Inline::Text { text } => {
                let mut out = String::with_capacity(text.len());
                for c in text.chars() {
                    if c.is_ascii_whitespace() {
                        if !(st.line_start || st.last_space) {
                            out.push(' ');
                            st.last_space = true;
                        }
                    } else {
                        out.push(c);
                        st.line_start = false;
                        st.last_space = false;
                    }
                }
                *text = out;
            }
            Inline::Bold { content } | Inline::Italic { content } | Inline::Strike { content } => {
                collapse_forward(content, st);
            }
            Inline::Link { content, .. } if !content.is_empty() => collapse_forward(content, st),
            Inline::LineBreak => {
                st.line_start = true;
                st.last_space = false;
            }
            _ => {
                st.line_start = false;
                st.last_space = false;
            }
        }
    }
}

/// Drops collapsible spaces at the end of each line (walking backwards).
fn trim_line_ends(items: &mut [Inline], at_end: &mut bool) {
    for item in items.iter_mut().rev() {
        match item {
            Inline::Text { text } => {
                if *at_end {
                    let keep = text.trim_end_matches(' ').len();
                    text.truncate(keep);
                }
                if !text.is_empty() {
                    *at_end = false;
                }
            }
            Inline::Bold { content } | Inline::Italic { content } | Inline::Strike { content } => {
                trim_line_ends(content, at_end);
            }
            Inline::Link { content, .. } => {
                trim_line_ends(content, at_end);
                // A link shows its URL when its label is empty.
                *at_end = false;
            }
            Inline::LineBreak => *at_end = true,
            _ => *at_end = false,
        }
    }
}

/// Non-breaking spaces become spaces.
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

/// Anything but whitespace text.
fn shows_something(items: &[Inline]) -> bool {
    items.iter().any(|item| match item {
        Inline::Text { text } => text.chars().any(|c| !c.is_whitespace()),
        Inline::Bold { content } | Inline::Italic { content } | Inline::Strike { content } => {
            shows_something(content)
        }
        _ => true,
    })
}

/// A link whose label is its URL gets an empty label ("show the URL").
fn clear_url_labels(items: &mut [Inline]) {
    for item in items {
        match item {
            Inline::Link { url, content } if !content.is_empty() => {
                let label = RichText {
                    blocks: vec![Block::Paragraph {
                        content: content.clone(),
                    }],
                }
                .to_plain();
                if label == *url {
                    content.clear();
                }
            }
            Inline::Bold { content } | Inline::Italic { content } | Inline::Strike { content } => {
                clear_url_labels(content);
            }
            _ => {}
        }
    }
}
