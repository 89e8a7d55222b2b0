//! Splitting a long message into several `m.room.message` events.
//!
//! Homeservers refuse events over 65,536 bytes of JSON (Synapse: 413
//! `M_TOO_LARGE`), and an event carries its text twice (`body` and
//! `formatted_body`), an edit four times. A body whose content would pass
//! the caller's budget is cut *on the RichText*, never on the rendered text,
//! so a cut never falls inside a tag, an entity or a pill:
//!
//! 1. top-level blocks stay whole when they fit;
//! 2. a block too large on its own is cut at its children: a quote at its
//!    blocks, a list at its items (an item too large at its blocks), a
//!    paragraph at its inline items, a code block at its lines;
//! 3. only a single text run, inline code or code line larger than the
//!    budget is cut inside, between characters (preferring whitespace); a
//!    link whose label is cut becomes several links to the same address.
//!    Mentions, emoji and line breaks are never cut.
//!
//! Sizes come from the caller (`size`: the bytes of the content one part
//! would be sent as), so the splitter knows nothing of the wire format.
//! Every part but the last ends in a [`CONTINUED`] paragraph; past
//! `max_parts` the rest is dropped and the last part ends in the caller's
//! truncation note instead.

use switchboard_model::{Block, Inline, RichText, group_by_size};

/// The paragraph that ends every part but the last.
pub const CONTINUED: &str = "(continued…)";

/// Ends the last part of a message that needed more than [`MAX_PARTS`].
pub const TRUNCATED: &str = "(message too long: the rest was not relayed)";

/// Ends the last part of an edit that needed more parts than were posted.
pub const EDIT_TRUNCATED: &str = "(edit too long: the rest was not relayed)";

/// The most events one message becomes.
pub const MAX_PARTS: usize = 20;

/// The most bytes of content JSON one part may take: below the 65,536-byte
/// event cap with room for the envelope (`sender`, `room_id`, ids,
/// `unsigned`, signatures and hashes the homeserver adds).
pub const CONTENT_BUDGET: usize = 48_000;

/// Room per nesting level (a quote, a list, emphasis or a link around a cut
/// piece), in both renderings.
const NEST: usize = 64;

/// Room per piece for what joins pieces (`\n\n` in `body`, JSON-escaped,
/// twice in an edit).
const JOIN: usize = 16;

/// Splits `body` into parts whose `size` is at most `max_bytes`, at most
/// `max_parts` of them (`truncated` ends the last one when there would have
/// been more). A body that fits is one part, unchanged; an empty body is one
/// empty part. A piece that cannot be cut (one mention, one emoji, one
/// character) is sent whole even if its part passes `max_bytes`, so
/// splitting always ends.
pub fn split(
    body: &RichText,
    max_bytes: usize,
    max_parts: usize,
    truncated: &str,
    size: &dyn Fn(&RichText) -> usize,
) -> Vec<RichText> {
    if body.blocks.is_empty() || size(body) <= max_bytes {
        return vec![body.clone()];
    }
    let max_parts = max_parts.max(1);
    let cx = Cx {
        size,
        base: size(&RichText::new()),
    };
    let tail = cx
        .block_cost(&note(CONTINUED))
        .max(cx.block_cost(&note(truncated)))
        + JOIN;
    let budget = max_bytes.saturating_sub(cx.base + tail).max(1);
    let mut pieces: Vec<(Block, usize)> = Vec::new();
    for block in &body.blocks {
        for piece in cx.split_block(block, budget) {
            let cost = cx.block_cost(&piece) + JOIN;
            pieces.push((piece, cost));
        }
    }
    // The sums are estimates (a plain piece gains HTML next to a formatted
    // one): check every part for real and halve those that do not fit.
    let longest = if truncated.len() > CONTINUED.len() {
        truncated
    } else {
        CONTINUED
    };
    let fit = Fit {
        max_bytes,
        note: longest,
    };
    let mut parts = Vec::new();
    for group in group_by_size(pieces, budget) {
        cx.fit(group, &fit, budget, 4, &mut parts);
    }
    let cut = parts.len() > max_parts;
    parts.truncate(max_parts);
    let count = parts.len();
    parts
        .into_iter()
        .enumerate()
        .map(|(n, mut blocks)| {
            if n + 1 < count {
                blocks.push(note(CONTINUED));
            } else if cut {
                blocks.push(note(truncated));
            }
            RichText { blocks }
        })
        .collect()
}

fn note(text: &str) -> Block {
    Block::Paragraph {
        content: vec![Inline::text(text)],
    }
}

/// What every part must fit in, with the longer of its possible notes.
struct Fit<'a> {
    max_bytes: usize,
    note: &'a str,
}

struct Cx<'a> {
    size: &'a dyn Fn(&RichText) -> usize,
    /// The size of an empty part (what every part carries besides its text).
    base: usize,
}

impl Cx<'_> {
    fn blocks_cost(&self, blocks: Vec<Block>) -> usize {
        (self.size)(&RichText { blocks }).saturating_sub(self.base)
    }

    fn block_cost(&self, block: &Block) -> usize {
        self.blocks_cost(vec![block.clone()])
    }

    fn inline_cost(&self, items: &[Inline]) -> usize {
        self.blocks_cost(vec![Block::Paragraph {
            content: items.to_vec(),
        }])
    }

    /// Pushes `group` onto `out`, halved until each half fits with `note`;
    /// a single block that does not fit is cut again with a smaller budget
    /// (a few times at most: what cannot be cut goes as it is).
    fn fit(
        &self,
        group: Vec<Block>,
        fit: &Fit<'_>,
        budget: usize,
        tries: u32,
        out: &mut Vec<Vec<Block>>,
    ) {
        let mut with_note = group.clone();
        with_note.push(note(fit.note));
        let actual = (self.size)(&RichText { blocks: with_note });
        if actual <= fit.max_bytes {
            out.push(group);
        } else if group.len() > 1 {
            let mut first = group;
            let second = first.split_off(first.len() / 2);
            self.fit(first, fit, budget, tries, out);
            self.fit(second, fit, budget, tries, out);
        } else if let Some(block) = group.first().filter(|_| tries > 0 && budget > 1) {
            let smaller = budget.saturating_mul(fit.max_bytes) / actual.max(1) * 9 / 10;
            let smaller = smaller.min(budget - 1).max(1);
            let pieces: Vec<(Block, usize)> = self
                .split_block(block, smaller)
                .into_iter()
                .map(|b| {
                    let cost = self.block_cost(&b) + JOIN;
                    (b, cost)
                })
                .collect();
            for g in group_by_size(pieces, smaller) {
                self.fit(g, fit, smaller, tries - 1, out);
            }
        } else {
            out.push(group);
        }
    }

    /// Cuts one block into blocks of at most `budget` where it can.
    fn split_block(&self, block: &Block, budget: usize) -> Vec<Block> {
        if self.block_cost(block) <= budget {
            return vec![block.clone()];
        }
        let inner = budget.saturating_sub(NEST).max(1);
        match block {
            Block::Paragraph { content } => self
                .split_inlines(content, inner)
                .into_iter()
                .map(|content| Block::Paragraph { content })
                .collect(),
            Block::CodeBlock { language, code } => {
                let make = |code: String| Block::CodeBlock {
                    language: language.clone(),
                    code,
                };
                let overhead = self.block_cost(&make(String::new()));
                self.split_code(code, budget.saturating_sub(overhead).max(1), &make)
                    .into_iter()
                    .map(make)
                    .collect()
            }
            Block::Quote { blocks } => {
                let mut pieces = Vec::new();
                for b in blocks {
                    for piece in self.split_block(b, inner) {
                        let cost = self.block_cost(&piece) + JOIN;
                        pieces.push((piece, cost));
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
                let mut pieces = Vec::new();
                for item in items {
                    let cost = self.block_cost(&list(vec![item.clone()])) + JOIN;
                    if cost <= inner {
                        pieces.push((item.clone(), cost));
                        continue;
                    }
                    // One item too large: its blocks become items of their own.
                    for b in item {
                        for piece in self.split_block(b, inner.saturating_sub(NEST).max(1)) {
                            let item = vec![piece];
                            let cost = self.block_cost(&list(vec![item.clone()])) + JOIN;
                            pieces.push((item, cost));
                        }
                    }
                }
                group_by_size(pieces, inner).into_iter().map(list).collect()
            }
        }
    }

    /// Cuts inline content into runs of at most `budget`.
    fn split_inlines(&self, items: &[Inline], budget: usize) -> Vec<Vec<Inline>> {
        let mut pieces = Vec::new();
        for item in items {
            let cost = self.inline_cost(std::slice::from_ref(item));
            if cost <= budget {
                pieces.push((item.clone(), cost));
            } else {
                for piece in self.split_inline(item, budget) {
                    let cost = self.inline_cost(std::slice::from_ref(&piece));
                    pieces.push((piece, cost));
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
        let inner = budget.saturating_sub(NEST).max(1);
        match item {
            Inline::Text { text } => {
                let cost = |s: &str| self.inline_cost(&[Inline::text(s)]);
                split_str(text, budget, true, &cost)
                    .into_iter()
                    .map(Inline::text)
                    .collect()
            }
            Inline::Code { code } => {
                let make = |s: &str| Inline::Code { code: s.to_owned() };
                let cost = |s: &str| self.inline_cost(&[make(s)]);
                split_str(code, budget, false, &cost)
                    .iter()
                    .map(|s| make(s))
                    .collect()
            }
            Inline::Bold { content } | Inline::Italic { content } | Inline::Strike { content } => {
                let wrap = |content: Vec<Inline>| match item {
                    Inline::Bold { .. } => Inline::Bold { content },
                    Inline::Italic { .. } => Inline::Italic { content },
                    _ => Inline::Strike { content },
                };
                self.split_inlines(content, inner)
                    .into_iter()
                    .map(wrap)
                    .collect()
            }
            Inline::Link { url, content } if !content.is_empty() => {
                let shell = Inline::Link {
                    url: url.clone(),
                    content: vec![Inline::text("x")],
                };
                let overhead = self.inline_cost(&[shell]).saturating_sub(1) + NEST;
                if overhead >= budget / 2 {
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

    /// Cuts code at lines (a line larger than `budget` inside it).
    fn split_code(&self, code: &str, budget: usize, make: &dyn Fn(String) -> Block) -> Vec<String> {
        let empty = self.block_cost(&make(String::new()));
        // A line with the newline that joins it to the next.
        let cost = |s: &str| {
            self.block_cost(&make(format!("{s}\n")))
                .saturating_sub(empty)
        };
        let mut pieces: Vec<(String, usize)> = Vec::new();
        for line in code.split('\n') {
            let c = cost(line);
            if c <= budget {
                pieces.push((line.to_owned(), c));
                continue;
            }
            for piece in split_str(line, budget, false, &cost) {
                let c = cost(&piece);
                pieces.push((piece, c));
            }
        }
        group_by_size(pieces, budget)
            .into_iter()
            .map(|lines| lines.join("\n"))
            .collect()
    }
}

/// Cuts `s` into the longest pieces whose `cost` is at most `budget`, each
/// at least one character, preferring to cut after whitespace; `trim` drops
/// the whitespace at each cut (prose). `cost` is at least the byte length.
fn split_str(s: &str, budget: usize, trim: bool, cost: &dyn Fn(&str) -> usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        // A byte of text costs at least a byte: look no further than
        // `budget` bytes (but always at one character).
        let bounds: Vec<usize> = rest
            .char_indices()
            .map(|(i, c)| i + c.len_utf8())
            .enumerate()
            .take_while(|(n, end)| *n == 0 || *end <= budget)
            .map(|(_, end)| end)
            .collect();
        // The most characters that fit (binary search on the real cost).
        let (mut lo, mut hi) = (0usize, bounds.len());
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            if cost(&rest[..bounds[mid - 1]]) <= budget {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        let mut cut = bounds[lo.max(1) - 1];
        if cut < rest.len()
            && let Some(space) = rest[..cut].rfind(char::is_whitespace)
            && space > cut / 2
        {
            cut = space + rest[space..].chars().next().map_or(1, char::len_utf8);
        }
        let (piece, tail) = rest.split_at(cut);
        let piece = if trim { piece.trim_end() } else { piece };
        if !piece.is_empty() {
            out.push(piece.to_owned());
        }
        rest = if trim { tail.trim_start() } else { tail };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use switchboard_model::{BridgeId, UserId};

    /// A stand-in for the content JSON: text twice (as `body` and HTML),
    /// markup and mentions counted, plus a fixed envelope.
    fn size(text: &RichText) -> usize {
        200 + serde_json::to_string(text).map_or(0, |s| s.len()) + text.to_plain().len()
    }

    fn mentions(text: &RichText) -> Vec<String> {
        let mut out = Vec::new();
        let mut text = text.clone();
        text.for_each_inline_mut(&mut |i| {
            if let Inline::UserMention { user, .. } = i {
                out.push(user.as_str().to_owned());
            }
        });
        out
    }

    fn ends_with_note(part: &RichText, note_text: &str) -> bool {
        matches!(part.blocks.last(), Some(b) if *b == note(note_text))
    }

    fn without_notes(parts: &[RichText]) -> Vec<Block> {
        parts
            .iter()
            .flat_map(|p| p.blocks.iter().cloned())
            .filter(|b| *b != note(CONTINUED))
            .collect()
    }

    /// The text of text runs and code, without whitespace, with the notes.
    fn words(blocks: &[Block]) -> String {
        fn inl(items: &[Inline], out: &mut String) {
            for i in items {
                match i {
                    Inline::Text { text } if text != CONTINUED => out.push_str(text),
                    Inline::Code { code } => out.push_str(code),
                    Inline::Bold { content }
                    | Inline::Italic { content }
                    | Inline::Strike { content }
                    | Inline::Link { content, .. } => inl(content, out),
                    _ => {}
                }
            }
        }
        let mut out = String::new();
        for b in blocks {
            match b {
                Block::Paragraph { content } => inl(content, &mut out),
                Block::CodeBlock { code, .. } => out.push_str(code),
                Block::Quote { blocks } => out.push_str(&words(blocks)),
                Block::List { items, .. } => {
                    for item in items {
                        out.push_str(&words(item));
                    }
                }
            }
        }
        out.split_whitespace().collect()
    }

    fn long_body(paragraphs: usize) -> RichText {
        let mut b = RichText::builder();
        for n in 0..paragraphs {
            b = b
                .text(format!("Paragraph {n}: "))
                .bold("important & <urgent>")
                .text(" — ")
                .mention(
                    BridgeId::new("slack:t"),
                    UserId::new(format!("u{n}")),
                    format!("Person {n}"),
                )
                .text(" ".to_owned() + &"lorem ipsum ".repeat(16))
                .paragraph();
        }
        b.build()
    }

    #[test]
    fn real_matrix_contents_stay_under_the_budget() {
        use crate::format::{FormatContext, render};
        use switchboard_model::MessageStyle;
        let bridge = BridgeId::new("matrix:test");
        let ghost_of = |b: &BridgeId, u: &UserId| Some(format!("@{}_{}:example.org", b, u));
        let person_of_ghost = |_: &str| None;
        let ctx = FormatContext {
            bridge: &bridge,
            server_name: "example.org",
            ghost_of: &ghost_of,
            person_of_ghost: &person_of_ghost,
        };
        let content = |text: &RichText| {
            let c = crate::bridge::text_content(&render(text, &ctx), MessageStyle::Normal, None);
            serde_json::to_string(&c).map_or(usize::MAX, |s| s.len())
        };
        let body = long_body(600);
        assert!(content(&body) > 150_000);
        let parts = split(&body, CONTENT_BUDGET, MAX_PARTS, TRUNCATED, &content);
        assert!(parts.len() >= 4, "{}", parts.len());
        for part in &parts {
            assert!(content(part) <= CONTENT_BUDGET, "{}", content(part));
            // Each part pings exactly the people it mentions.
            let rendered = render(part, &ctx);
            assert_eq!(rendered.mentioned_users.len(), mentions(part).len());
        }
        assert_eq!(without_notes(&parts), body.blocks);
    }

    #[test]
    fn a_short_body_is_one_unchanged_part() {
        let body = RichText::plain("hello");
        assert_eq!(split(&body, 1000, MAX_PARTS, TRUNCATED, &size), vec![body]);
        let empty = RichText::new();
        assert_eq!(split(&empty, 10, MAX_PARTS, TRUNCATED, &size), vec![empty]);
    }

    #[test]
    fn a_long_body_splits_in_order_under_budget_with_notes() {
        let body = long_body(400);
        assert!(size(&body) > 150_000);
        let parts = split(&body, 20_000, MAX_PARTS, TRUNCATED, &size);
        assert!(parts.len() >= 8, "{} parts", parts.len());
        for (n, part) in parts.iter().enumerate() {
            assert!(size(part) <= 20_000, "part {n}: {}", size(part));
            assert_eq!(ends_with_note(part, CONTINUED), n + 1 < parts.len());
            assert!(!ends_with_note(part, TRUNCATED));
        }
        // Every paragraph exactly once, in order; mentions whole.
        assert_eq!(without_notes(&parts), body.blocks);
        let all: Vec<String> = parts.iter().flat_map(mentions).collect();
        assert_eq!(all, mentions(&body));
    }

    #[test]
    fn one_huge_paragraph_is_cut_between_items_and_words() {
        let mut b = RichText::builder();
        for n in 0..300 {
            b = b
                .text(format!("word{n} "))
                .mention(BridgeId::new("slack:t"), UserId::new("u1"), "Alice Smith")
                .italic(" and some italic text ".repeat(3))
                .line_break();
        }
        b = b.text("x".repeat(30_000));
        let body = b.build();
        let parts = split(&body, 6000, MAX_PARTS, TRUNCATED, &size);
        assert!(parts.len() > 3);
        for part in &parts {
            assert!(size(part) <= 6000, "{}", size(part));
        }
        let seen: usize = parts.iter().map(|p| mentions(p).len()).sum();
        assert!(seen <= 300);
        assert!(ends_with_note(&parts[parts.len() - 1], TRUNCATED));
    }

    #[test]
    fn code_lists_and_quotes_are_cut_inside() {
        let items: Vec<RichText> = (0..200)
            .map(|n| RichText::plain(format!("item {n} {}", "x".repeat(50))))
            .collect();
        let body = RichText::builder()
            .code_block(Some("rust"), "let x = a && b < c;\n".repeat(300).trim_end())
            .list(true, items)
            .quote(RichText::plain("quoted ".repeat(500).trim_end()))
            .build();
        let parts = split(&body, 3000, 100, TRUNCATED, &size);
        let mut lines = 0;
        let mut items = 0;
        for part in &parts {
            assert!(size(part) <= 3000, "{}", size(part));
            for b in &part.blocks {
                match b {
                    Block::CodeBlock { language, code } => {
                        assert_eq!(language.as_deref(), Some("rust"));
                        lines += code.lines().count();
                    }
                    Block::List { items: i, .. } => items += i.len(),
                    _ => {}
                }
            }
        }
        assert_eq!(lines, 300);
        assert_eq!(items, 200);
    }

    #[test]
    fn too_many_parts_are_truncated_visibly() {
        let body = RichText::plain("word ".repeat(20_000).trim_end());
        let parts = split(&body, 1000, MAX_PARTS, TRUNCATED, &size);
        assert_eq!(parts.len(), MAX_PARTS);
        assert!(ends_with_note(&parts[MAX_PARTS - 1], TRUNCATED));
        assert!(ends_with_note(&parts[0], CONTINUED));
        let one = split(&body, 1000, 1, EDIT_TRUNCATED, &size);
        assert_eq!(one.len(), 1);
        assert!(ends_with_note(&one[0], EDIT_TRUNCATED));
        assert!(size(&one[0]) <= 1000);
    }

    fn inline() -> BoxedStrategy<Inline> {
        let leaf = prop_oneof![
            "[a-z &<>\"é€😀]{0,400}".prop_map(Inline::text),
            "[a-z <&]{0,100}".prop_map(|code| Inline::Code { code }),
            (0..50u32).prop_map(|n| Inline::UserMention {
                bridge: BridgeId::new("slack:t"),
                user: UserId::new(format!("u{n}")),
                name: format!("Person {n}"),
            }),
            Just(Inline::LineBreak),
            Just(Inline::RoomMention),
        ];
        leaf.prop_recursive(2, 20, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 1..5)
                    .prop_map(|content| Inline::Bold { content }),
                prop::collection::vec(inner, 1..5).prop_map(|content| Inline::Link {
                    url: "https://example.org/x".into(),
                    content
                }),
            ]
        })
        .boxed()
    }

    fn block() -> impl Strategy<Value = Block> {
        let para = prop::collection::vec(inline(), 1..40)
            .prop_map(|content| Block::Paragraph { content })
            .boxed();
        let code = "[a-z<>\n ]{0,3000}".prop_map(|code| Block::CodeBlock {
            language: None,
            code,
        });
        prop_oneof![4 => para.clone(), 1 => code, 1 => prop::collection::vec(para.clone(), 1..6)
            .prop_map(|blocks| Block::Quote { blocks }),
            1 => prop::collection::vec(prop::collection::vec(para, 1..3), 1..8)
            .prop_map(|items| Block::List { ordered: false, items })]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn every_part_fits_and_mentions_survive(
            blocks in prop::collection::vec(block(), 1..30),
            budget in 2_000usize..12_000,
        ) {
            let body = RichText { blocks };
            let parts = split(&body, budget, 1000, TRUNCATED, &size);
            prop_assert!(!parts.is_empty());
            for (n, part) in parts.iter().enumerate() {
                prop_assert!(size(part) <= budget, "part {} is {} > {}", n, size(part), budget);
                prop_assert_eq!(ends_with_note(part, CONTINUED), n + 1 < parts.len());
            }
            // No mention is cut or lost, and they stay in order.
            let all: Vec<String> = parts.iter().flat_map(mentions).collect();
            prop_assert_eq!(all, mentions(&body));
            // No text is lost (whitespace at cuts aside), in order.
            let kept: String = parts.iter().map(|p| words(&p.blocks)).collect();
            prop_assert_eq!(kept, words(&body.blocks));
        }
    }
}
