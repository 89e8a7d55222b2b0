//! RichText: the hub format.
//!
//! No platform's markup is the hub. Each connector parses its dialect (Slack
//! mrkdwn and blocks, Teams HTML, Matrix HTML) into this small tree and renders
//! the tree back into its dialect. Keeping the tree small and normalised is
//! what makes round trips stable: for every dialect, `parse(render(x)) == x`
//! for every `x` that dialect can express.
//!
//! Trees are kept in normal form (see [`RichText::normalize`]): adjacent text
//! runs merged, empty runs and empty paragraphs dropped. Every constructor in
//! this module returns normalised trees, and dialect parsers must as well.

use crate::ids::{BridgeId, ChannelId, UserId};
use serde::{Deserialize, Serialize};

/// A formatted message body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RichText {
    /// Its blocks, top to bottom.
    pub blocks: Vec<Block>,
}

/// A block-level element.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "block", rename_all = "snake_case")]
pub enum Block {
    /// A paragraph of inline content.
    Paragraph {
        /// Its content.
        content: Vec<Inline>,
    },
    /// Preformatted code.
    CodeBlock {
        /// The language, if given (`rust`, `json`…).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        language: Option<String>,
        /// The code, without a trailing newline.
        code: String,
    },
    /// A quotation.
    Quote {
        /// The quoted blocks.
        blocks: Vec<Block>,
    },
    /// A bulleted or numbered list.
    List {
        /// Numbered when true.
        ordered: bool,
        /// Each item's blocks.
        items: Vec<Vec<Block>>,
    },
}

/// An inline element.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "inline", rename_all = "snake_case")]
pub enum Inline {
    /// Plain text. Never contains `\n`: line breaks are [`Inline::LineBreak`].
    Text {
        /// The text.
        text: String,
    },
    /// Bold content.
    Bold {
        /// What is bold.
        content: Vec<Inline>,
    },
    /// Italic content.
    Italic {
        /// What is italic.
        content: Vec<Inline>,
    },
    /// Struck-through content.
    Strike {
        /// What is struck through.
        content: Vec<Inline>,
    },
    /// Inline code.
    Code {
        /// The code.
        code: String,
    },
    /// A hyperlink.
    Link {
        /// The target.
        url: String,
        /// The label; empty means "show the URL".
        content: Vec<Inline>,
    },
    /// A mention of a person. The relay rewrites it to the target platform's
    /// identity of that person (the person themself, or their puppet) or, if
    /// they have none there, leaves it to be rendered as `@name`.
    UserMention {
        /// The bridge the mentioned account lives on.
        bridge: BridgeId,
        /// The mentioned account.
        user: UserId,
        /// Their display name, for rendering where the mention cannot be native.
        name: String,
    },
    /// A mention of a channel.
    ChannelMention {
        /// The bridge the channel lives on.
        bridge: BridgeId,
        /// The channel.
        channel: ChannelId,
        /// Its name.
        name: String,
    },
    /// A mention of everyone in the room (`@here`, `@channel`, `@room`).
    RoomMention,
    /// An emoji. `unicode` is set where one exists; custom emoji have only a name.
    Emoji {
        /// Its shortcode name without colons (`thumbsup`).
        name: String,
        /// The Unicode character(s), if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        unicode: Option<String>,
    },
    /// A hard line break inside a paragraph.
    LineBreak,
}

impl Inline {
    /// A text run. Newlines become [`Inline::LineBreak`]s when pushed through a builder.
    pub fn text(text: impl Into<String>) -> Self {
        Inline::Text { text: text.into() }
    }
}

/// Groups sized pieces greedily, in order, into runs whose sizes add up to
/// at most `budget` (a piece larger than the budget goes alone): how the
/// connectors pack a long message's pieces into posts.
pub fn group_by_size<T>(pieces: Vec<(T, usize)>, budget: usize) -> Vec<Vec<T>> {
    let mut out = Vec::new();
    let mut current = Vec::new();
    let mut size = 0usize;
    for (piece, piece_size) in pieces {
        if !current.is_empty() && size + piece_size > budget {
            out.push(std::mem::take(&mut current));
            size = 0;
        }
        current.push(piece);
        size += piece_size;
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

impl RichText {
    /// An empty body.
    pub fn new() -> Self {
        RichText::default()
    }

    /// Plain text: blank lines separate paragraphs, other newlines are line breaks.
    pub fn plain(text: impl AsRef<str>) -> Self {
        let text = text.as_ref().replace("\r\n", "\n");
        let mut b = RichText::builder();
        for para in text.split("\n\n") {
            b = b.text(para).paragraph();
        }
        b.build()
    }

    /// Starts a builder.
    pub fn builder() -> RichTextBuilder {
        RichTextBuilder::default()
    }

    /// True when there is nothing to show.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// Renders as readable plain text: markup dropped, mentions as `@name`,
    /// links as `label (url)`, quotes prefixed with `> `, list items with `• `
    /// or `1. `. Paragraphs are separated by a blank line.
    pub fn to_plain(&self) -> String {
        let mut out = String::new();
        render_blocks_plain(&self.blocks, &mut out);
        out
    }

    /// Brings the tree into normal form: adjacent text runs merged, empty text
    /// runs, empty formatting and empty paragraphs removed, newlines inside
    /// text turned into line breaks.
    pub fn normalize(&mut self) {
        normalize_blocks(&mut self.blocks);
    }

    /// Calls `f` on every inline element, depth first, including nested ones.
    pub fn for_each_inline_mut(&mut self, f: &mut dyn FnMut(&mut Inline)) {
        fn walk_inlines(items: &mut [Inline], f: &mut dyn FnMut(&mut Inline)) {
            for item in items {
                f(item);
                match item {
                    Inline::Bold { content }
                    | Inline::Italic { content }
                    | Inline::Strike { content }
                    | Inline::Link { content, .. } => walk_inlines(content, f),
                    _ => {}
                }
            }
        }
        fn walk_blocks(blocks: &mut [Block], f: &mut dyn FnMut(&mut Inline)) {
            for block in blocks {
                match block {
                    Block::Paragraph { content } => walk_inlines(content, f),
                    Block::Quote { blocks } => walk_blocks(blocks, f),
                    Block::List { items, .. } => {
                        for item in items {
                            walk_blocks(item, f);
                        }
                    }
                    Block::CodeBlock { .. } => {}
                }
            }
        }
        walk_blocks(&mut self.blocks, f);
    }

    /// The number of characters of the plain rendering (for length limits).
    pub fn plain_len(&self) -> usize {
        self.to_plain().chars().count()
    }

    /// A body that starts with `prefix` (as its own text run) followed by this one.
    pub fn prefixed(&self, prefix: Vec<Inline>) -> RichText {
        let mut blocks = self.blocks.clone();
        match blocks.first_mut() {
            Some(Block::Paragraph { content }) => {
                let mut joined = prefix;
                joined.append(content);
                *content = joined;
            }
            _ => blocks.insert(0, Block::Paragraph { content: prefix }),
        }
        let mut out = RichText { blocks };
        out.normalize();
        out
    }
}

/// Builds a [`RichText`] left to right. Inline calls add to the current
/// paragraph; block calls close it first.
#[derive(Debug, Default)]
pub struct RichTextBuilder {
    blocks: Vec<Block>,
    current: Vec<Inline>,
}

impl RichTextBuilder {
    /// Adds text; `\n` becomes a line break.
    pub fn text(mut self, text: impl AsRef<str>) -> Self {
        push_text(&mut self.current, text.as_ref());
        self
    }

    /// Adds bold text.
    pub fn bold(self, text: impl AsRef<str>) -> Self {
        let content = inline_text(text.as_ref());
        self.inline(Inline::Bold { content })
    }

    /// Adds italic text.
    pub fn italic(self, text: impl AsRef<str>) -> Self {
        let content = inline_text(text.as_ref());
        self.inline(Inline::Italic { content })
    }

    /// Adds struck-through text.
    pub fn strike(self, text: impl AsRef<str>) -> Self {
        let content = inline_text(text.as_ref());
        self.inline(Inline::Strike { content })
    }

    /// Adds inline code.
    pub fn code(self, code: impl Into<String>) -> Self {
        self.inline(Inline::Code { code: code.into() })
    }

    /// Adds a link with a text label (empty label: the URL is shown).
    pub fn link(self, url: impl Into<String>, label: impl AsRef<str>) -> Self {
        let content = inline_text(label.as_ref());
        self.inline(Inline::Link {
            url: url.into(),
            content,
        })
    }

    /// Adds a mention of a person.
    pub fn mention(self, bridge: BridgeId, user: UserId, name: impl Into<String>) -> Self {
        self.inline(Inline::UserMention {
            bridge,
            user,
            name: name.into(),
        })
    }

    /// Adds a mention of a channel.
    pub fn channel(self, bridge: BridgeId, channel: ChannelId, name: impl Into<String>) -> Self {
        self.inline(Inline::ChannelMention {
            bridge,
            channel,
            name: name.into(),
        })
    }

    /// Adds a mention of everyone in the room.
    pub fn room_mention(self) -> Self {
        self.inline(Inline::RoomMention)
    }

    /// Adds an emoji.
    pub fn emoji(self, name: impl Into<String>, unicode: Option<&str>) -> Self {
        self.inline(Inline::Emoji {
            name: name.into(),
            unicode: unicode.map(str::to_owned),
        })
    }

    /// Adds a line break.
    pub fn line_break(self) -> Self {
        self.inline(Inline::LineBreak)
    }

    /// Adds any inline element.
    pub fn inline(mut self, inline: Inline) -> Self {
        self.current.push(inline);
        self
    }

    /// Ends the current paragraph.
    pub fn paragraph(mut self) -> Self {
        self.flush();
        self
    }

    /// Adds a code block.
    pub fn code_block(mut self, language: Option<&str>, code: impl Into<String>) -> Self {
        self.flush();
        self.blocks.push(Block::CodeBlock {
            language: language.map(str::to_owned),
            code: code.into(),
        });
        self
    }

    /// Adds a quotation of another body.
    pub fn quote(mut self, quoted: RichText) -> Self {
        self.flush();
        self.blocks.push(Block::Quote {
            blocks: quoted.blocks,
        });
        self
    }

    /// Adds a list whose items are bodies of their own.
    pub fn list(mut self, ordered: bool, items: Vec<RichText>) -> Self {
        self.flush();
        self.blocks.push(Block::List {
            ordered,
            items: items.into_iter().map(|i| i.blocks).collect(),
        });
        self
    }

    /// Finishes, in normal form.
    pub fn build(mut self) -> RichText {
        self.flush();
        let mut out = RichText {
            blocks: self.blocks,
        };
        out.normalize();
        out
    }

    fn flush(&mut self) {
        if !self.current.is_empty() {
            let content = std::mem::take(&mut self.current);
            self.blocks.push(Block::Paragraph { content });
        }
    }
}

fn inline_text(text: &str) -> Vec<Inline> {
    let mut out = Vec::new();
    push_text(&mut out, text);
    out
}

fn push_text(out: &mut Vec<Inline>, text: &str) {
    let mut first = true;
    for line in text.split('\n') {
        if !first {
            out.push(Inline::LineBreak);
        }
        first = false;
        if !line.is_empty() {
            out.push(Inline::Text {
                text: line.to_owned(),
            });
        }
    }
}

fn normalize_blocks(blocks: &mut Vec<Block>) {
    for block in blocks.iter_mut() {
        match block {
            Block::Paragraph { content } => normalize_inlines(content),
            Block::Quote { blocks } => normalize_blocks(blocks),
            Block::List { items, .. } => {
                for item in items.iter_mut() {
                    normalize_blocks(item);
                }
                items.retain(|i| !i.is_empty());
            }
            Block::CodeBlock { .. } => {}
        }
    }
    blocks.retain(|b| match b {
        Block::Paragraph { content } => !content.is_empty(),
        Block::Quote { blocks } => !blocks.is_empty(),
        Block::List { items, .. } => !items.is_empty(),
        Block::CodeBlock { .. } => true,
    });
}

fn normalize_inlines(items: &mut Vec<Inline>) {
    let mut out: Vec<Inline> = Vec::with_capacity(items.len());
    for mut item in items.drain(..) {
        match &mut item {
            Inline::Text { text } => {
                if text.contains('\n') {
                    let mut parts = Vec::new();
                    push_text(&mut parts, text);
                    for p in parts {
                        push_merged(&mut out, p);
                    }
                    continue;
                }
                if text.is_empty() {
                    continue;
                }
            }
            Inline::Bold { content } | Inline::Italic { content } | Inline::Strike { content } => {
                normalize_inlines(content);
                if content.is_empty() {
                    continue;
                }
            }
            Inline::Link { content, .. } => normalize_inlines(content),
            _ => {}
        }
        push_merged(&mut out, item);
    }
    *items = out;
}

fn push_merged(out: &mut Vec<Inline>, item: Inline) {
    if let (Inline::Text { text }, Some(Inline::Text { text: prev })) = (&item, out.last_mut()) {
        prev.push_str(text);
        return;
    }
    out.push(item);
}

fn render_blocks_plain(blocks: &[Block], out: &mut String) {
    for (i, block) in blocks.iter().enumerate() {
        if i > 0 {
            out.push_str("\n\n");
        }
        match block {
            Block::Paragraph { content } => render_inlines_plain(content, out),
            Block::CodeBlock { code, .. } => out.push_str(code),
            Block::Quote { blocks } => {
                let mut inner = String::new();
                render_blocks_plain(blocks, &mut inner);
                let quoted: Vec<String> = inner.split('\n').map(|l| format!("> {l}")).collect();
                out.push_str(&quoted.join("\n"));
            }
            Block::List { ordered, items } => {
                for (n, item) in items.iter().enumerate() {
                    if n > 0 {
                        out.push('\n');
                    }
                    let marker = if *ordered {
                        format!("{}. ", n + 1)
                    } else {
                        "• ".to_owned()
                    };
                    let mut inner = String::new();
                    render_blocks_plain(item, &mut inner);
                    let indent = " ".repeat(marker.chars().count());
                    for (l, line) in inner.split('\n').enumerate() {
                        if l == 0 {
                            out.push_str(&marker);
                        } else {
                            out.push('\n');
                            out.push_str(&indent);
                        }
                        out.push_str(line);
                    }
                }
            }
        }
    }
}

fn render_inlines_plain(items: &[Inline], out: &mut String) {
    for item in items {
        match item {
            Inline::Text { text } => out.push_str(text),
            Inline::Bold { content } | Inline::Italic { content } | Inline::Strike { content } => {
                render_inlines_plain(content, out)
            }
            Inline::Code { code } => out.push_str(code),
            Inline::Link { url, content } => {
                let mut label = String::new();
                render_inlines_plain(content, &mut label);
                if label.is_empty() || label == *url {
                    out.push_str(url);
                } else {
                    out.push_str(&label);
                    out.push_str(" (");
                    out.push_str(url);
                    out.push(')');
                }
            }
            Inline::UserMention { name, .. } => {
                out.push('@');
                out.push_str(name);
            }
            Inline::ChannelMention { name, .. } => {
                out.push('#');
                out.push_str(name);
            }
            Inline::RoomMention => out.push_str("@room"),
            Inline::Emoji { name, unicode } => match unicode {
                Some(u) => out.push_str(u),
                None => {
                    out.push(':');
                    out.push_str(name);
                    out.push(':');
                }
            },
            Inline::LineBreak => out.push('\n'),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_are_grouped_in_order_within_the_budget() {
        let pieces = vec![("a", 4), ("b", 4), ("c", 3), ("big", 20), ("d", 1)];
        assert_eq!(
            group_by_size(pieces, 10),
            vec![vec!["a", "b"], vec!["c"], vec!["big"], vec!["d"]]
        );
        assert!(group_by_size(Vec::<(u8, usize)>::new(), 10).is_empty());
    }

    #[test]
    fn builder_normalises_and_renders_plain() {
        let body = RichText::builder()
            .text("Hello ")
            .text("")
            .bold("world")
            .text(", see ")
            .link("https://example.org", "this")
            .text("\nbye ")
            .emoji("wave", Some("👋"))
            .code_block(Some("rust"), "fn main() {}")
            .list(
                false,
                vec![RichText::plain("one"), RichText::plain("two\nlines")],
            )
            .quote(RichText::plain("quoted"))
            .build();
        assert_eq!(
            body.to_plain(),
            "Hello world, see this (https://example.org)\nbye 👋\n\nfn main() {}\n\n• one\n• two\n  lines\n\n> quoted"
        );
        // Adjacent text merged.
        let Block::Paragraph { content } = &body.blocks[0] else {
            panic!("paragraph first")
        };
        assert_eq!(content[0], Inline::text("Hello "));
    }

    #[test]
    fn plain_splits_paragraphs_and_lines() {
        let body = RichText::plain("a\nb\n\nc");
        assert_eq!(body.blocks.len(), 2);
        assert_eq!(body.to_plain(), "a\nb\n\nc");
    }

    #[test]
    fn normalize_drops_empty_and_merges() {
        let mut body = RichText {
            blocks: vec![
                Block::Paragraph {
                    content: vec![
                        Inline::text("a"),
                        Inline::text("b\nc"),
                        Inline::Bold { content: vec![] },
                    ],
                },
                Block::Paragraph { content: vec![] },
            ],
        };
        body.normalize();
        assert_eq!(
            body.blocks,
            vec![Block::Paragraph {
                content: vec![Inline::text("ab"), Inline::LineBreak, Inline::text("c")]
            }]
        );
    }

    #[test]
    fn prefixed_joins_first_paragraph() {
        let body = RichText::plain("hello").prefixed(vec![Inline::text("✏️ ")]);
        assert_eq!(body.to_plain(), "✏️ hello");
        assert_eq!(body.blocks.len(), 1);
    }

    #[test]
    fn mentions_visited_everywhere() {
        let mut body = RichText::builder()
            .bold("x")
            .mention("a:1".into(), "u1".into(), "Ann")
            .quote(
                RichText::builder()
                    .mention("a:1".into(), "u2".into(), "Bob")
                    .build(),
            )
            .build();
        let mut seen = Vec::new();
        body.for_each_inline_mut(&mut |i| {
            if let Inline::UserMention { user, .. } = i {
                seen.push(user.to_string());
            }
        });
        assert_eq!(seen, ["u1", "u2"]);
    }
}
