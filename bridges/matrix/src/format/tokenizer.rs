//! A small, forgiving HTML tokenizer and tree builder for Matrix
//! `formatted_body` fragments.
//!
//! Not a full HTML5 parser: message bodies are small fragments of a few tags.
//! It handles start and end tags with attributes (double-, single- or
//! unquoted), comments, declarations and processing instructions (skipped),
//! raw-text elements such as `script` and `style` (skipped with their
//! content), void elements, self-closing tags and character references. An
//! end tag closes the nearest open element of its name (and everything opened
//! inside it) or is ignored; a `<li>` closes the open `<li>` of its list and a
//! block-level start tag closes an open `<p>`, as in HTML. Start tags nested
//! deeper than [`MAX_DEPTH`] are ignored (their text is kept). Nothing here
//! panics on any input, and the work is linear in the input's length.

/// The deepest element nesting kept.
pub(super) const MAX_DEPTH: usize = 100;

/// A node of the fragment tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Node {
    /// Decoded text.
    Text(String),
    /// An element.
    Element(Element),
}

/// An element; its name and attribute names are lowercase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Element {
    pub(super) name: String,
    pub(super) attrs: Vec<(String, String)>,
    pub(super) children: Vec<Node>,
}

impl Element {
    /// The (decoded) value of attribute `name`, if present.
    pub(super) fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Elements that never have content.
fn is_void(name: &str) -> bool {
    matches!(
        name,
        "br" | "img"
            | "hr"
            | "wbr"
            | "input"
            | "meta"
            | "link"
            | "area"
            | "base"
            | "col"
            | "embed"
            | "param"
            | "source"
            | "track"
            | "keygen"
    )
}

/// Elements whose content is raw text that is never shown: skipped whole.
fn is_raw_text(name: &str) -> bool {
    matches!(
        name,
        "script"
            | "style"
            | "iframe"
            | "noscript"
            | "noembed"
            | "noframes"
            | "template"
            | "textarea"
            | "title"
            | "xmp"
            | "plaintext"
    )
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

/// Parses an HTML fragment into its top-level nodes.
pub(super) fn parse_fragment(html: &str) -> Vec<Node> {
    let mut builder = Builder::default();
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
        let (tag, remaining) = parse_tag(after);
        rest = remaining;
        if is_raw_text(&tag.name) {
            if tag.self_closing {
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
fn parse_tag(s: &str) -> (Tag, &str) {
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
            // A stray '=': skip it.
            rest = &rest[1..];
            continue;
        }
        let key = rest[..key_end].to_ascii_lowercase();
        rest = rest[key_end..].trim_start();
        let mut value = String::new();
        if let Some(r) = rest.strip_prefix('=') {
            let r = r.trim_start();
            if let Some(quote) = r.chars().next().filter(|c| *c == '"' || *c == '\'') {
                let inner = &r[1..];
                match inner.find(quote) {
                    Some(end) => {
                        value = decode_entities(&inner[..end]);
                        rest = &inner[end + 1..];
                    }
                    None => {
                        value = decode_entities(inner);
                        rest = "";
                    }
                }
            } else {
                let end = r
                    .char_indices()
                    .find(|(_, c)| c.is_whitespace() || *c == '>')
                    .map_or(r.len(), |(i, _)| i);
                value = decode_entities(&r[..end]);
                rest = &r[end..];
            }
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

/// Builds the tree from tokens.
#[derive(Default)]
struct Builder {
    root: Vec<Node>,
    /// Open elements, innermost last.
    stack: Vec<Element>,
}

impl Builder {
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
            self.push(Node::Text(decode_entities(raw)));
        }
    }

    fn start(&mut self, tag: Tag) {
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
        let element = Element {
            name: tag.name,
            attrs: tag.attrs,
            children: Vec::new(),
        };
        if is_void(&element.name) || tag.self_closing {
            self.push(Node::Element(element));
        } else if self.stack.len() < MAX_DEPTH {
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
pub(super) fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let tail = &rest[amp + 1..];
        let len = tail
            .bytes()
            .take(32)
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'#')
            .count();
        match decode_reference(&tail[..len]) {
            Some(decoded) => {
                out.push(decoded);
                let after = &tail[len..];
                rest = after.strip_prefix(';').unwrap_or(after);
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

    #[test]
    fn builds_a_tree() {
        let nodes = parse_fragment("<div a=1 B='x' c=\"y\" d><b>hi</b> &amp; <br/>bye</div>");
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
        let nodes = parse_fragment(
            "<!DOCTYPE html>a<script>alert('</b>')</SCRIPT >b<!-- <b> -->c<?xml?> < d</p>",
        );
        assert_eq!(nodes, vec![Node::Text("abc < d".into())]);
        assert!(parse_fragment("x<style>never closed").len() == 1);
    }

    #[test]
    fn list_items_and_paragraphs_close_implicitly() {
        let nodes = parse_fragment("<ul><li>a<li>b</ul><p>x<p>y");
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
        let nodes = parse_fragment(&html);
        let mut depth = 0;
        let mut level = &nodes;
        while let Some(Node::Element(e)) = level.first() {
            depth += 1;
            level = &e.children;
        }
        assert_eq!(depth, MAX_DEPTH);
        assert_eq!(level, &vec![Node::Text("x".into())]);
    }
}
