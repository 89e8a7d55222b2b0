//! Splitting a body into several posts that each fit Graph's size limit.
//!
//! Graph takes "approximately 28 KB per post", and that counts the message
//! itself, its `@`-mentions and later reactions (protocols/teams.md §5). A
//! longer body is cut into parts *on the RichText*, never on the HTML, so a
//! cut can never fall inside a tag, an entity or a mention:
//!
//! 1. top-level blocks stay whole when they fit;
//! 2. a block too large on its own is cut at its children: a quote at its
//!    blocks, a list at its items (each piece stays a list; an ordered list's
//!    later pieces count from 1 again, as HTML has no other way without a
//!    `start` attribute Teams does not document), a paragraph at its inline
//!    items, a code block at its lines;
//! 3. only a single text run, inline code or code line longer than the
//!    budget is cut inside, between characters (preferring a space), and a
//!    link whose label is cut becomes two links to the same address.
//!    Mentions, emoji and line breaks are never cut.
//!
//! A part's size is its HTML plus the JSON of its `mentions[]` entries, with
//! room for the renumbering of mentions in each part. Every part but the last
//! ends in a [`CONTINUED`] paragraph; past [`MAX_PARTS`] the rest is dropped
//! and the last part says so ([`TRUNCATED`]).

use super::{Mention, render};
use switchboard_model::{Block, BridgeId, Inline, RichText, group_by_size};

/// The paragraph that ends every part but the last.
pub const CONTINUED: &str = "(continued…)";

/// The paragraph that ends the last part when a body needed more than
/// [`MAX_PARTS`] parts.
pub const TRUNCATED: &str = "(message too long: the rest was not relayed)";

/// The most posts one body becomes (about 480 KB of HTML at the default
/// budget). Teams also caps an app at 3000 messages per channel per day
/// (protocols/teams.md §4), so an enormous body must not flood a channel.
pub const MAX_PARTS: usize = 20;

/// Room per mention for its id growing from one digit to up to four, twice
/// (`<at id="N">` and `"id":N`).
const MENTION_SLACK: usize = 6;

/// Splits a body into messages whose HTML plus `mentions[]` JSON is at most
/// `max_bytes` (use [`super::DEFAULT_SPLIT_BYTES`] under Graph's
/// [`super::MESSAGE_SIZE_LIMIT`], minus whatever the caller adds to each
/// part). See the module docs for where cuts fall. Each part has its own
/// mention numbering. A body that fits is one part; an empty body is one
/// empty part. Limits below about 400 bytes cannot always be honoured (a
/// mention or an emoji is never cut, a code block's markup alone is 54
/// bytes, and one character nested in a list item, a quote, a link and
/// emphasis carries about 100 bytes of markup before the continuation note
/// is added); every part still carries at least one character, so
/// splitting always ends.
pub fn split_to_limit(
    body: &RichText,
    bridge: &BridgeId,
    max_bytes: usize,
) -> Vec<(String, Vec<Mention>)> {
    let whole = render(body, bridge);
    if body.blocks.is_empty() || cost(&whole) <= max_bytes {
        return vec![whole];
    }
    let cx = Cx { bridge };
    let tail = cx
        .block_size(&note(CONTINUED))
        .max(cx.block_size(&note(TRUNCATED)));
    let budget = max_bytes.saturating_sub(tail).max(1);
    let mut pieces: Vec<(Block, usize)> = Vec::new();
    for block in &body.blocks {
        for piece in cx.split_block(block, budget) {
            let size = cx.block_size(&piece);
            pieces.push((piece, size));
        }
    }
    let mut parts = group_by_size(pieces, budget);
    let truncated = parts.len() > MAX_PARTS;
    parts.truncate(MAX_PARTS);
    let count = parts.len();
    parts
        .into_iter()
        .enumerate()
        .map(|(n, mut blocks)| {
            if n + 1 < count {
                blocks.push(note(CONTINUED));
            } else if truncated {
                blocks.push(note(TRUNCATED));
            }
            render(&RichText { blocks }, bridge)
        })
        .collect()
}

/// The size a rendered part counts for: its HTML and its mentions' JSON.
fn cost((html, mentions): &(String, Vec<Mention>)) -> usize {
    html.len()
        + mentions
            .iter()
            .map(|m| m.to_graph().to_string().len() + 1 + MENTION_SLACK)
            .sum::<usize>()
}

fn note(text: &str) -> Block {
    Block::Paragraph {
        content: vec![Inline::text(text)],
    }
}

struct Cx<'a> {
    bridge: &'a BridgeId,
}

impl Cx<'_> {
    fn block_size(&self, block: &Block) -> usize {
        cost(&render(
            &RichText {
                blocks: vec![block.clone()],
            },
            self.bridge,
        ))
    }

    /// The size of inline items inside a paragraph, without the `<p></p>`.
    fn inline_size(&self, items: &[Inline]) -> usize {
        self.block_size(&Block::Paragraph {
            content: items.to_vec(),
        })
        .saturating_sub(7)
    }

    /// Cuts one block into blocks of at most `budget` where it can.
    fn split_block(&self, block: &Block, budget: usize) -> Vec<Block> {
        if self.block_size(block) <= budget {
            return vec![block.clone()];
        }
        match block {
            Block::Paragraph { content } => self
                .split_inlines(content, budget.saturating_sub(7))
                .into_iter()
                .map(|content| Block::Paragraph { content })
                .collect(),
            Block::CodeBlock { language, code } => {
                let make = |code: String| Block::CodeBlock {
                    language: language.clone(),
                    code,
                };
                let overhead = self.block_size(&make(String::new()));
                self.split_code(code, budget.saturating_sub(overhead))
                    .into_iter()
                    .map(make)
                    .collect()
            }
            Block::Quote { blocks } => {
                const OVERHEAD: usize = "<blockquote></blockquote>".len();
                let inner = budget.saturating_sub(OVERHEAD).max(1);
                let mut pieces = Vec::new();
                for b in blocks {
                    for piece in self.split_block(b, inner) {
                        let size = self.block_size(&piece);
                        pieces.push((piece, size));
                    }
                }
                group_by_size(pieces, inner)
                    .into_iter()
                    .map(|blocks| Block::Quote { blocks })
                    .collect()
            }
            Block::List { ordered, items } => {
                let list = |items: Vec<Vec<Block>>| Block::List {
                    ordered: *ordered,
                    items,
                };
                const OVERHEAD: usize = "<ul></ul>".len();
                const ITEM: usize = "<li></li>".len();
                let inner = budget.saturating_sub(OVERHEAD).max(1);
                let mut pieces = Vec::new();
                for item in items {
                    let size = self
                        .block_size(&list(vec![item.clone()]))
                        .saturating_sub(OVERHEAD);
                    if size <= inner {
                        pieces.push((item.clone(), size));
                        continue;
                    }
                    // One item too large: its blocks become items of their own.
                    for b in item {
                        for piece in self.split_block(b, inner.saturating_sub(ITEM).max(1)) {
                            let item = vec![piece];
                            let size = self
                                .block_size(&list(vec![item.clone()]))
                                .saturating_sub(OVERHEAD);
                            pieces.push((item, size));
                        }
                    }
                }
                group_by_size(pieces, inner).into_iter().map(list).collect()
            }
        }
    }

    /// Cuts inline content into runs of at most `budget`.
    fn split_inlines(&self, items: &[Inline], budget: usize) -> Vec<Vec<Inline>> {
        let budget = budget.max(1);
        let mut pieces = Vec::new();
        for item in items {
            let size = self.inline_size(std::slice::from_ref(item));
            if size <= budget {
                pieces.push((item.clone(), size));
            } else {
                for piece in self.split_inline(item, budget) {
                    let size = self.inline_size(std::slice::from_ref(&piece));
                    pieces.push((piece, size));
                }
            }
        }
        let mut runs = group_by_size(pieces, budget);
        // A run does not start or end with a line break: the cut is the break.
        for run in &mut runs {
            while run.len() > 1 && matches!(run.last(), Some(Inline::LineBreak)) {
                run.pop();
            }
            while run.len() > 1 && matches!(run.first(), Some(Inline::LineBreak)) {
                run.remove(0);
            }
        }
        runs
    }

    /// Cuts one inline item that is larger than `budget`.
    fn split_inline(&self, item: &Inline, budget: usize) -> Vec<Inline> {
        match item {
            Inline::Text { text } => self.split_string(text, budget, true, &|s| Inline::text(s)),
            Inline::Code { code } => {
                let make = |s: &str| Inline::Code { code: s.to_owned() };
                let overhead = self.inline_size(&[make("")]);
                self.split_string(code, budget.saturating_sub(overhead), false, &make)
            }
            Inline::Bold { content } | Inline::Italic { content } | Inline::Strike { content } => {
                let wrap = |content: Vec<Inline>| match item {
                    Inline::Bold { .. } => Inline::Bold { content },
                    Inline::Italic { .. } => Inline::Italic { content },
                    _ => Inline::Strike { content },
                };
                self.split_inlines(content, budget.saturating_sub(7))
                    .into_iter()
                    .map(wrap)
                    .collect()
            }
            Inline::Link { url, content } if !content.is_empty() => {
                let shell = Inline::Link {
                    url: url.clone(),
                    content: vec![Inline::text("x")],
                };
                let overhead = self.inline_size(&[shell]).saturating_sub(1);
                if overhead >= budget {
                    // The address alone is too long: keep the label as text.
                    return self
                        .split_inlines(content, budget)
                        .into_iter()
                        .flatten()
                        .collect();
                }
                self.split_inlines(content, budget - overhead)
                    .into_iter()
                    .map(|content| Inline::Link {
                        url: url.clone(),
                        content,
                    })
                    .collect()
            }
            // Mentions, emoji, line breaks and bare links are never cut.
            other => vec![other.clone()],
        }
    }

    /// Cuts a string into the longest pieces whose item (`make`) fits
    /// `budget`, each at least one character, preferring to cut after
    /// whitespace; `trim` drops the whitespace at each cut (prose).
    fn split_string(
        &self,
        s: &str,
        budget: usize,
        trim: bool,
        make: &dyn Fn(&str) -> Inline,
    ) -> Vec<Inline> {
        let size = |piece: &str| self.inline_size(&[make(piece)]);
        let mut out = Vec::new();
        let mut rest = s;
        while !rest.is_empty() {
            // Estimate by escaped length, then correct against the renderer.
            let mut cut = 0usize;
            let mut estimate = 0usize;
            for (i, c) in rest.char_indices() {
                estimate += match c {
                    '&' | '\n' => 5,
                    '<' | '>' => 4,
                    c => c.len_utf8(),
                };
                if estimate > budget && i > 0 {
                    break;
                }
                cut = i + c.len_utf8();
            }
            if cut < rest.len()
                && let Some(space) = rest[..cut].rfind(char::is_whitespace)
                && space > cut / 2
            {
                cut = space + 1;
            }
            while cut > 0 && size(&rest[..cut]) > budget {
                let step = (cut / 10).max(1);
                let mut shorter = cut.saturating_sub(step);
                while shorter > 0 && !rest.is_char_boundary(shorter) {
                    shorter -= 1;
                }
                if shorter == 0 {
                    // One character at least, whatever it costs.
                    cut = rest.chars().next().map_or(rest.len(), char::len_utf8);
                    break;
                }
                cut = shorter;
            }
            let cut = cut.max(rest.chars().next().map_or(0, char::len_utf8));
            let (piece, tail) = rest.split_at(cut);
            let piece = if trim { piece.trim_end() } else { piece };
            if !piece.is_empty() {
                out.push(make(piece));
            }
            rest = if trim { tail.trim_start() } else { tail };
        }
        out
    }

    /// Cuts code at lines (a line longer than `budget` inside it).
    fn split_code(&self, code: &str, budget: usize) -> Vec<String> {
        let budget = budget.max(1);
        let escaped = |s: &str| {
            s.chars()
                .map(|c| match c {
                    '&' => 5,
                    '<' | '>' => 4,
                    c => c.len_utf8(),
                })
                .sum::<usize>()
        };
        let mut pieces: Vec<(String, usize)> = Vec::new();
        for line in code.split('\n') {
            if escaped(line) < budget {
                pieces.push((line.to_owned(), escaped(line) + 1));
                continue;
            }
            let make = |s: &str| Inline::Code { code: s.to_owned() };
            let overhead = self.inline_size(&[make("")]);
            for piece in self.split_string(line, budget + overhead - 1, false, &make) {
                if let Inline::Code { code } = piece {
                    let size = escaped(&code) + 1;
                    pieces.push((code, size));
                }
            }
        }
        group_by_size(pieces, budget)
            .into_iter()
            .map(|lines| lines.join("\n"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::html::parse;
    use switchboard_model::UserId;

    fn bridge() -> BridgeId {
        BridgeId::new("teams:t")
    }

    /// What Graph counts: the HTML and the `mentions[]` JSON.
    fn bytes((html, mentions): &(String, Vec<Mention>)) -> usize {
        html.len()
            + mentions
                .iter()
                .map(|m| m.to_graph().to_string().len() + 1)
                .sum::<usize>()
    }

    /// Checks that every `<` opens a complete tag and every `&` a complete
    /// entity, and that tags balance within the part.
    fn well_formed(html: &str) {
        let mut stack: Vec<String> = Vec::new();
        let mut rest = html;
        while let Some(i) = rest.find(['<', '&']) {
            let after = &rest[i..];
            if after.starts_with('&') {
                let end = after.find(';').expect("entity ends");
                assert!(end <= 8, "entity too long in {html}");
                rest = &after[end + 1..];
                continue;
            }
            let end = after.find('>').expect("tag ends");
            let tag = &after[1..end];
            let name: String = tag
                .trim_start_matches('/')
                .chars()
                .take_while(char::is_ascii_alphanumeric)
                .collect();
            if tag.starts_with('/') {
                assert_eq!(stack.pop().as_deref(), Some(name.as_str()), "{html}");
            } else if name != "br" {
                stack.push(name);
            }
            rest = &after[end + 1..];
        }
        assert!(stack.is_empty(), "unclosed {stack:?} in {html}");
    }

    #[test]
    fn a_100_kb_body_splits_at_blocks_and_keeps_its_mentions() {
        let mut b = RichText::builder();
        for n in 0..400 {
            b = b
                .text(format!("Paragraph {n}: "))
                .bold("important & <urgent>")
                .text(" — ")
                .mention(
                    bridge(),
                    UserId::new(format!("u{n}")),
                    format!("Person {n}"),
                )
                .text(" ".to_owned() + &"lorem ipsum ".repeat(16))
                .paragraph();
        }
        let body = b.build();
        let whole = render(&body, &bridge()).0;
        assert!(whole.len() > 100_000, "{}", whole.len());
        let parts = split_to_limit(&body, &bridge(), crate::html::DEFAULT_SPLIT_BYTES);
        assert!(parts.len() >= 5, "{} parts", parts.len());
        let mut mentions = 0;
        let mut paragraphs = 0;
        for (n, part) in parts.iter().enumerate() {
            assert!(bytes(part) <= crate::html::DEFAULT_SPLIT_BYTES, "part {n}");
            well_formed(&part.0);
            // Each part numbers its mentions from 0 and refers only to its own.
            for (i, m) in part.1.iter().enumerate() {
                assert_eq!(m.id as usize, i);
                assert!(part.0.contains(&format!("<at id=\"{i}\">{}</at>", m.text)));
            }
            mentions += part.1.len();
            let parsed = parse(&part.0, &part.1, &bridge()).body;
            paragraphs += parsed.blocks.len();
            assert_eq!(part.0.ends_with("<p>(continued…)</p>"), n + 1 < parts.len());
        }
        // Nothing lost: every paragraph and mention arrives exactly once
        // (plus one "(continued…)" per part but the last).
        assert_eq!(mentions, 400);
        assert_eq!(paragraphs, 400 + parts.len() - 1);
    }

    #[test]
    fn one_huge_paragraph_is_cut_between_inline_items_and_words() {
        let mut b = RichText::builder();
        for n in 0..300 {
            b = b
                .text(format!("word{n} "))
                .mention(bridge(), UserId::new("u1"), "Alice Smith")
                .italic(" and some italic text")
                .line_break();
        }
        let body = b.build();
        let parts = split_to_limit(&body, &bridge(), 6000);
        assert!(parts.len() > 3);
        let mut seen = 0;
        for part in &parts {
            assert!(bytes(part) <= 6000);
            well_formed(&part.0);
            seen += part.0.matches("Alice Smith</at>").count();
            assert!(!part.0.starts_with("<p><br>"));
        }
        assert_eq!(seen, 300, "every mention whole, once");
    }

    #[test]
    fn long_text_runs_and_code_are_cut_inside_without_breaking_entities() {
        let text = "a&b<c> ".repeat(500);
        let body = RichText::builder()
            .text(text.trim_end())
            .code_block(Some("rust"), "let x = a && b < c;\n".repeat(300).trim_end())
            .build();
        let parts = split_to_limit(&body, &bridge(), 1500);
        let mut code_lines = 0;
        for part in &parts {
            assert!(part.0.len() <= 1500, "{}", part.0.len());
            well_formed(&part.0);
            code_lines += part.0.matches("let x = a &amp;&amp; b &lt; c;").count();
        }
        assert_eq!(code_lines, 300, "code lines are kept whole");
        // Languages survive in every piece of a cut code block.
        assert!(
            parts
                .iter()
                .filter(|p| p.0.contains("<codeblock"))
                .all(|p| p.0.contains("class=\"rust\""))
        );
    }

    #[test]
    fn big_lists_and_quotes_are_cut_at_items() {
        let items: Vec<RichText> = (0..200)
            .map(|n| RichText::plain(format!("item {n} {}", "x".repeat(50))))
            .collect();
        let body = RichText::builder()
            .list(true, items)
            .quote(RichText::plain("quoted ".repeat(500).trim_end()))
            .build();
        let parts = split_to_limit(&body, &bridge(), 1200);
        let mut items_seen = 0;
        for part in &parts {
            assert!(part.0.len() <= 1200);
            well_formed(&part.0);
            items_seen += part.0.matches("<li>item ").count();
        }
        assert_eq!(items_seen, 200);
    }

    #[test]
    fn too_many_parts_are_truncated_visibly() {
        let body = RichText::plain("word ".repeat(20_000).trim_end());
        let parts = split_to_limit(&body, &bridge(), 1000);
        assert_eq!(parts.len(), MAX_PARTS);
        assert!(parts[MAX_PARTS - 1].0.contains(TRUNCATED));
        assert!(parts[0].0.contains(CONTINUED));
    }
}
