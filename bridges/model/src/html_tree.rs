//! A small, forgiving HTML tokenizer and tree builder for message-body
//! fragments, shared by the connectors whose platforms speak HTML.
//!
//! Not a full HTML5 parser: message bodies are small fragments of a few tags.
//! It handles start and end tags with attributes (double-, single- or
//! unquoted), comments, declarations and processing instructions (skipped),
//! raw-text elements such as `script` and `style` (skipped with their
//! content), void elements, self-closing tags and character references. An
//! end tag closes the nearest open element of its name (and everything opened
//! inside it) or is ignored. With [`TokenizerOptions::implied_end_tags`] a
//! `<li>` closes the open `<li>` of its list and a block-level start tag
//! closes an open `<p>`, as in HTML. Start tags nested deeper than
//! [`TokenizerOptions::max_depth`] are ignored (their text is kept). Nothing
//! here panics on any input, and the work is linear in the input's length.
//!
//! [`parse_fragment`] parses with HTML's defaults ([`TokenizerOptions::HTML`]);
//! [`parse_fragment_with`] takes every knob.

/// HTML's void elements: they never have content.
pub const VOID_ELEMENTS: &[&str] = &[
    "br", "img", "hr", "wbr", "input", "meta", "link", "area", "base", "col", "embed", "param",
    "source", "track", "keygen",
];

/// Elements whose content is raw text that is never shown: skipped whole.
pub const RAW_TEXT_ELEMENTS: &[&str] = &[
    "script",
    "style",
    "iframe",
    "noscript",
    "noembed",
    "noframes",
    "template",
    "textarea",
    "title",
    "xmp",
    "plaintext",
];

/// How [`parse_fragment_with`] reads a fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenizerOptions {
    /// The deepest element nesting kept; deeper start tags are ignored (their
    /// text is kept).
    pub max_depth: usize,
    /// Elements that never have content (lowercase).
    pub void_elements: &'static [&'static str],
    /// Elements skipped with their content, up to their end tag (lowercase).
    pub raw_text_elements: &'static [&'static str],
    /// HTML's implied end tags: a `<li>` closes the open `<li>` of its list
    /// and a block-level start tag closes an open `<p>`.
    pub implied_end_tags: bool,
    /// Whether a self-closed raw-text start tag (`<script/>`) is empty. If
    /// not, its content still runs to its end tag.
    pub self_closed_raw_text_is_empty: bool,
    /// Whether a stray `=` in a start tag (one with no attribute name before
    /// it) takes the value written after it, so that `<a ==x>` has no
    /// attribute. If not, the `=` alone is skipped and `<a ==x>` has `x=""`.
    pub stray_equals_takes_value: bool,
    /// Whether a character-reference name may be 33 characters long (it is
    /// then never followed by a `;` of its own) rather than at most 32. Only
    /// numeric references with many leading zeros tell the two apart.
    pub long_reference_names: bool,
}

impl TokenizerOptions {
    /// HTML's void and raw-text elements and implied end tags, nesting kept
    /// to 100 levels.
    pub const HTML: Self = Self {
        max_depth: 100,
        void_elements: VOID_ELEMENTS,
        raw_text_elements: RAW_TEXT_ELEMENTS,
        implied_end_tags: true,
        self_closed_raw_text_is_empty: true,
        stray_equals_takes_value: false,
        long_reference_names: false,
    };
}

impl Default for TokenizerOptions {
    fn default() -> Self {
        Self::HTML
    }
}

/// A node of the fragment tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// Decoded text.
    Text(String),
    /// An element.
    Element(Element),
}

/// An element; its name and attribute names are lowercase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    /// The lowercase tag name.
    pub name: String,
    /// The attributes in document order, names lowercase, values decoded; the
    /// first of repeated names wins.
    pub attrs: Vec<(String, String)>,
    /// The child nodes.
    pub children: Vec<Node>,
}

impl Element {
    /// The (decoded) value of attribute `name`, if present.
    #[must_use]
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Start tags that close an open `<p>`.
fn closes_paragraph(name: &str) -> bool {
    matches!(
        name,
        "p" | "div"
            | "blockquote"
            | "pre"
            | "ul"
            | "ol"
            | "dl"
            | "table"
            | "hr"
            | "h1"
            | "h2"
            | "h3"
            | "h4"
            | "h5"
            | "h6"
            | "details"
            | "section"
            | "article"
            | "aside"
            | "header"
            | "footer"
            | "nav"
            | "main"
            | "figure"
            | "address"
            | "fieldset"
            | "form"
    )
}

/// Parses an HTML fragment into its top-level nodes with
/// [`TokenizerOptions::HTML`] and nesting kept to `max_depth` levels.
#[must_use]
pub fn parse_fragment(html: &str, max_depth: usize) -> Vec<Node> {
    parse_fragment_with(
        html,
        &TokenizerOptions {
            max_depth,
            ..TokenizerOptions::HTML
        },
    )
}

/// Parses an HTML fragment into its top-level nodes.
#[must_use]
pub fn parse_fragment_with(html: &str, options: &TokenizerOptions) -> Vec<Node> {
    let mut builder = Builder {
        options,
        root: Vec::new(),
        stack: Vec::new(),
    };
    let mut rest = html;
    while !rest.is_empty() {
        let Some(lt) = rest.find('<') else {
            builder.text(rest);
            break;
        };
        if lt > 0 {
            builder.text(&rest[..lt]);
            rest = &rest[lt..];
        }
        // `rest` starts with '<'.
        let after = &rest[1..];
        if let Some(comment) = after.strip_prefix("!--") {
            rest = comment.find("-->").map_or("", |end| &comment[end + 3..]);
            continue;
        }
        if after.starts_with(['!', '?']) {
            rest = after.find('>').map_or("", |end| &after[end + 1..]);
            continue;
        }
        if let Some(close) = after.strip_prefix('/') {
            if close.starts_with(|c: char| c.is_ascii_alphabetic()) {
                let end = close.find('>').unwrap_or(close.len());
                builder.end(&tag_name(&close[..end]));
                rest = close.get(end + 1..).unwrap_or("");
            } else {
                builder.text("</");
                rest = close;
            }
            continue;
        }
        if !after.starts_with(|c: char| c.is_ascii_alphabetic()) {
            builder.text("<");
            rest = after;
            continue;
        }
        let (tag, remaining) = parse_tag(after, options);
        rest = remaining;
        if options.raw_text_elements.contains(&tag.name.as_str()) {
            if tag.self_closing && options.self_closed_raw_text_is_empty {
                continue;
            }
            let needle = format!("</{}", tag.name);
            rest = match find_ascii_ci(rest, &needle) {
                Some(pos) => {
                    let tail = &rest[pos..];
                    tail.find('>').map_or("", |end| &tail[end + 1..])
                }
                None => "",
            };
            continue;
        }
        builder.start(tag);
    }
    builder.finish()
}

/// Case-insensitive search for an ASCII needle; the result is a char boundary.
fn find_ascii_ci(haystack: &str, needle: &str) -> Option<usize> {
    let h = haystack.as_bytes();
    let n = needle.as_bytes();
    if n.is_empty() || h.len() < n.len() {
        return None;
    }
    (0..=h.len() - n.len()).find(|&i| h[i..i + n.len()].eq_ignore_ascii_case(n))
}

/// The lowercase tag name at the start of `s`.
fn tag_name(s: &str) -> String {
    s.chars()
        .take_while(|c| !c.is_whitespace() && *c != '/' && *c != '>')
        .collect::<String>()
        .to_ascii_lowercase()
}

struct Tag {
    name: String,
    attrs: Vec<(String, String)>,
    self_closing: bool,
}

/// Parses a start tag after its `<`; returns it and the input after it.
fn parse_tag<'a>(s: &'a str, options: &TokenizerOptions) -> (Tag, &'a str) {
    let name = tag_name(s);
    let name_end = s
        .char_indices()
        .find(|(_, c)| c.is_whitespace() || *c == '/' || *c == '>')
        .map_or(s.len(), |(i, _)| i);
    let mut rest = &s[name_end..];
    let mut attrs: Vec<(String, String)> = Vec::new();
    let mut self_closing = false;
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            break;
        }
        if let Some(r) = rest.strip_prefix('>') {
            rest = r;
            break;
        }
        if let Some(r) = rest.strip_prefix('/') {
            self_closing = true;
            rest = r;
            continue;
        }
        self_closing = false;
        let key_end = rest
            .char_indices()
            .find(|(_, c)| c.is_whitespace() || matches!(c, '=' | '>' | '/'))
            .map_or(rest.len(), |(i, _)| i);
        if key_end == 0 {
            // A stray '=': skip it (and, if asked, the value after it).
            rest = &rest[1..];
            if options.stray_equals_takes_value
                && let Some(r) = rest.trim_start().strip_prefix('=')
            {
                rest = attr_value(r, options).1;
            }
            continue;
        }
        let key = rest[..key_end].to_ascii_lowercase();
        rest = rest[key_end..].trim_start();
        let mut value = String::new();
        if let Some(r) = rest.strip_prefix('=') {
            (value, rest) = attr_value(r, options);
        }
        if !attrs.iter().any(|(k, _)| *k == key) {
            attrs.push((key, value));
        }
    }
    (
        Tag {
            name,
            attrs,
            self_closing,
        },
        rest,
    )
}

/// Parses an attribute value after its `=`; returns it decoded and the input
/// after it.
fn attr_value<'a>(r: &'a str, options: &TokenizerOptions) -> (String, &'a str) {
    let r = r.trim_start();
    let decode = |s: &str| decode_with(s, options.long_reference_names);
    if let Some(quote) = r.chars().next().filter(|c| *c == '"' || *c == '\'') {
        let inner = &r[1..];
        match inner.find(quote) {
            Some(end) => (decode(&inner[..end]), &inner[end + 1..]),
            None => (decode(inner), ""),
        }
    } else {
        let end = r
            .char_indices()
            .find(|(_, c)| c.is_whitespace() || *c == '>')
            .map_or(r.len(), |(i, _)| i);
        (decode(&r[..end]), &r[end..])
    }
}

/// Builds the tree from tokens.
struct Builder<'o> {
    options: &'o TokenizerOptions,
    root: Vec<Node>,
    /// Open elements, innermost last.
    stack: Vec<Element>,
}

impl Builder<'_> {
    fn push(&mut self, node: Node) {
        let target = match self.stack.last_mut() {
            Some(open) => &mut open.children,
            None => &mut self.root,
        };
        if let (Node::Text(t), Some(Node::Text(prev))) = (&node, target.last_mut()) {
            prev.push_str(t);
            return;
        }
        target.push(node);
    }

    fn text(&mut self, raw: &str) {
        if !raw.is_empty() {
            let text = decode_with(raw, self.options.long_reference_names);
            self.push(Node::Text(text));
        }
    }

    fn start(&mut self, tag: Tag) {
        if self.options.implied_end_tags {
            if tag.name == "li"
                && let Some(pos) = self
                    .stack
                    .iter()
                    .rposition(|e| matches!(e.name.as_str(), "li" | "ul" | "ol"))
                && self.stack[pos].name == "li"
            {
                self.close_to(pos);
            }
            if closes_paragraph(&tag.name) && self.stack.last().is_some_and(|e| e.name == "p") {
                self.close_to(self.stack.len() - 1);
            }
        }
        let element = Element {
            name: tag.name,
            attrs: tag.attrs,
            children: Vec::new(),
        };
        if self.options.void_elements.contains(&element.name.as_str()) || tag.self_closing {
            self.push(Node::Element(element));
        } else if self.stack.len() < self.options.max_depth {
            self.stack.push(element);
        }
    }

    fn end(&mut self, name: &str) {
        if let Some(pos) = self.stack.iter().rposition(|e| e.name == name) {
            self.close_to(pos);
        }
    }

    /// Closes every open element from index `pos` up.
    fn close_to(&mut self, pos: usize) {
        while self.stack.len() > pos {
            if let Some(done) = self.stack.pop() {
                self.push(Node::Element(done));
            }
        }
    }

    fn finish(mut self) -> Vec<Node> {
        self.close_to(0);
        self.root
    }
}

/// Decodes character references (`&amp;`, `&#39;`, `&#x1F44D;`…). Unknown
/// or malformed references stay as written; `&#0;`, surrogates and values
/// beyond Unicode become U+FFFD.
#[must_use]
pub fn decode_entities(s: &str) -> String {
    decode_with(s, false)
}

/// [`decode_entities`], with reference names of up to 33 characters if
/// `long_names` (see [`TokenizerOptions::long_reference_names`]).
fn decode_with(s: &str, long_names: bool) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    let max_name = if long_names { 33 } else { 32 };
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let tail = &rest[amp + 1..];
        let len = tail
            .bytes()
            .take(max_name)
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'#')
            .count();
        match decode_reference(&tail[..len]) {
            Some(decoded) => {
                out.push(decoded);
                let after = &tail[len..];
                rest = if long_names && len == max_name {
                    after
                } else {
                    after.strip_prefix(';').unwrap_or(after)
                };
            }
            None => {
                out.push('&');
                rest = tail;
            }
        }
    }
    out.push_str(rest);
    out
}

fn decode_reference(name: &str) -> Option<char> {
    if let Some(num) = name.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse::<u32>().ok()?,
        };
        return Some(match char::from_u32(code) {
            Some('\0') | None => '\u{FFFD}',
            Some(c) => c,
        });
    }
    Some(match name {
        "amp" | "AMP" => '&',
        "lt" | "LT" => '<',
        "gt" | "GT" => '>',
        "quot" | "QUOT" => '"',
        "apos" => '\'',
        "nbsp" => '\u{a0}',
        "copy" => '©',
        "reg" => '®',
        "trade" => '™',
        "hellip" => '…',
        "mdash" => '—',
        "ndash" => '–',
        "lsquo" => '‘',
        "rsquo" => '’',
        "ldquo" => '“',
        "rdquo" => '”',
        "bull" => '•',
        "middot" => '·',
        "zwj" => '\u{200d}',
        "zwnj" => '\u{200c}',
        "euro" => '€',
        "times" => '×',
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX_DEPTH: usize = 100;

    fn parse(html: &str) -> Vec<Node> {
        parse_fragment(html, MAX_DEPTH)
    }

    /// Options like the Teams connector's: no implied end tags, a narrower
    /// raw-text set, a void element of its own and the older quirks.
    const NARROW: TokenizerOptions = TokenizerOptions {
        max_depth: 64,
        void_elements: &["br", "img", "systemeventmessage"],
        raw_text_elements: &["script", "style"],
        implied_end_tags: false,
        self_closed_raw_text_is_empty: false,
        stray_equals_takes_value: true,
        long_reference_names: true,
    };

    fn parse_narrow(html: &str) -> Vec<Node> {
        parse_fragment_with(html, &NARROW)
    }

    #[test]
    fn builds_a_tree() {
        let nodes = parse("<div a=1 B='x' c=\"y\" d><b>hi</b> &amp; <br/>bye</div>");
        let [Node::Element(div)] = nodes.as_slice() else {
            panic!("one div: {nodes:?}")
        };
        assert_eq!(div.attr("a"), Some("1"));
        assert_eq!(div.attr("b"), Some("x"));
        assert_eq!(div.attr("c"), Some("y"));
        assert_eq!(div.attr("d"), Some(""));
        assert_eq!(div.children.len(), 4);
    }

    #[test]
    fn skips_raw_text_comments_and_declarations() {
        let nodes =
            parse("<!DOCTYPE html>a<script>alert('</b>')</SCRIPT >b<!-- <b> -->c<?xml?> < d</p>");
        assert_eq!(nodes, vec![Node::Text("abc < d".into())]);
        assert!(parse("x<style>never closed").len() == 1);
    }

    #[test]
    fn list_items_and_paragraphs_close_implicitly() {
        let nodes = parse("<ul><li>a<li>b</ul><p>x<p>y");
        let [Node::Element(ul), Node::Element(p1), Node::Element(p2)] = nodes.as_slice() else {
            panic!("ul and two paragraphs: {nodes:?}")
        };
        assert_eq!(ul.children.len(), 2);
        assert_eq!(p1.children, vec![Node::Text("x".into())]);
        assert_eq!(p2.children, vec![Node::Text("y".into())]);
    }

    #[test]
    fn entities() {
        assert_eq!(
            decode_entities("&lt;&#x1F44D;&#65;&bogus;&&#0;&#xD800;&#99999999999;"),
            "<👍A&bogus;&\u{FFFD}\u{FFFD}&#99999999999;"
        );
    }

    #[test]
    fn deep_nesting_is_bounded() {
        let html = "<b>".repeat(10_000) + "x";
        let nodes = parse(&html);
        let mut depth = 0;
        let mut level = &nodes;
        while let Some(Node::Element(e)) = level.first() {
            depth += 1;
            level = &e.children;
        }
        assert_eq!(depth, MAX_DEPTH);
        assert_eq!(level, &vec![Node::Text("x".into())]);
    }

    #[test]
    fn narrow_builds_a_tree() {
        let nodes = parse_narrow("<div a=1 B='x'><b>hi</b> &amp; <br/>bye</div>");
        let [Node::Element(div)] = nodes.as_slice() else {
            panic!("one div: {nodes:?}")
        };
        assert_eq!(div.attr("a"), Some("1"));
        assert_eq!(div.attr("b"), Some("x"));
        assert_eq!(div.children.len(), 4);
    }

    #[test]
    fn narrow_drops_scripts_and_keeps_stray_text() {
        let nodes = parse_narrow("a<script>alert(1)</SCRIPT>b < c</p>");
        assert_eq!(nodes, vec![Node::Text("ab < c".into())]);
    }

    #[test]
    fn narrow_entities() {
        assert_eq!(
            decode_with("&lt;&#x1F44D;&#65;&bogus;&", true),
            "<👍A&bogus;&"
        );
    }

    #[test]
    fn narrow_deep_nesting_is_bounded() {
        let html = "<b>".repeat(10_000) + "x";
        let nodes = parse_narrow(&html);
        assert!(!nodes.is_empty());
    }

    #[test]
    fn options_change_only_their_own_corner() {
        // Implied end tags.
        let nodes = parse_narrow("<p>x<p>y");
        let [Node::Element(p)] = nodes.as_slice() else {
            panic!("one p: {nodes:?}")
        };
        assert_eq!(p.children.len(), 2);
        // Void and raw-text sets.
        assert_eq!(
            parse_narrow("<systemEventMessage/>a<noembed>b</noembed>").len(),
            3
        );
        assert_eq!(parse("<noembed>b</noembed>a"), vec![Node::Text("a".into())]);
        // A self-closed raw-text tag.
        assert_eq!(parse("<script/>a</script>b"), vec![Node::Text("ab".into())]);
        assert_eq!(
            parse_narrow("<script/>a</script>b"),
            vec![Node::Text("b".into())]
        );
        // A stray '='.
        let attrs = |nodes: Vec<Node>| match nodes.as_slice() {
            [Node::Element(e)] => e.attrs.clone(),
            _ => panic!("one element: {nodes:?}"),
        };
        assert_eq!(attrs(parse("<a ==x>")), vec![("x".into(), String::new())]);
        assert_eq!(attrs(parse_narrow("<a ==x>")), Vec::new());
        // Reference names of 33 characters.
        let long = format!("&#{}65;", "0".repeat(30));
        assert_eq!(decode_with(&long, true), "A;");
        assert_eq!(decode_with(&long, false), "\u{6}5;");
    }
}
