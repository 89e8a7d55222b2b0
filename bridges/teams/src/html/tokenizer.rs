//! A small, forgiving HTML tokenizer and tree builder for Teams message
//! bodies.
//!
//! It is not a full HTML5 parser: Teams bodies are small fragments made of a
//! handful of tags, so this handles start and end tags with attributes (quoted
//! or not), comments, `<!DOCTYPE …>` and other declarations, the raw-text
//! elements `script` and `style` (their content is dropped), void elements and
//! character references. Mismatched end tags close the nearest matching open
//! element or are ignored. Nesting deeper than [`MAX_DEPTH`] is flattened.
//! Nothing here panics on any input.

/// The deepest element nesting kept; deeper start tags are ignored (their
/// text is kept).
pub(crate) const MAX_DEPTH: usize = 64;

/// A node of the fragment tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Node {
    /// Decoded text.
    Text(String),
    /// An element.
    Element(Element),
}

/// An element with lowercase name and attribute names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Element {
    pub(crate) name: String,
    pub(crate) attrs: Vec<(String, String)>,
    pub(crate) children: Vec<Node>,
}

impl Element {
    /// The value of attribute `name`, if present.
    pub(crate) fn attr(&self, name: &str) -> Option<&str> {
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
            | "meta"
            | "link"
            | "input"
            | "wbr"
            | "col"
            | "area"
            | "base"
            | "source"
            | "embed"
            | "param"
            | "track"
            | "systemeventmessage"
    )
}

/// Elements whose content is raw text that is never shown.
fn is_raw_dropped(name: &str) -> bool {
    matches!(
        name,
        "script" | "style" | "title" | "template" | "noscript" | "iframe" | "textarea" | "xmp"
    )
}

/// Parses an HTML fragment into a list of top-level nodes.
pub(crate) fn parse_fragment(html: &str) -> Vec<Node> {
    let mut builder = Builder::default();
    let mut rest = html;
    while !rest.is_empty() {
        let Some(lt) = rest.find('<') else {
            builder.text(&decode_entities(rest));
            break;
        };
        if lt > 0 {
            builder.text(&decode_entities(&rest[..lt]));
            rest = &rest[lt..];
            continue;
        }
        // rest starts with '<'.
        let after = &rest[1..];
        if let Some(comment) = after.strip_prefix("!--") {
            rest = match comment.find("-->") {
                Some(end) => &comment[end + 3..],
                None => "",
            };
            continue;
        }
        if after.starts_with('!') || after.starts_with('?') {
            rest = match after.find('>') {
                Some(end) => &after[end + 1..],
                None => "",
            };
            continue;
        }
        if let Some(close) = after.strip_prefix('/') {
            if close.starts_with(|c: char| c.is_ascii_alphabetic()) {
                let end = close.find('>').unwrap_or(close.len());
                let name = tag_name(&close[..end]);
                builder.end(&name);
                rest = close.get(end + 1..).unwrap_or("");
                continue;
            }
            // `</` not followed by a letter: text.
            builder.text("</");
            rest = close;
            continue;
        }
        if !after.starts_with(|c: char| c.is_ascii_alphabetic()) {
            builder.text("<");
            rest = after;
            continue;
        }
        let (name, attrs, self_closing, remaining) = parse_tag(after);
        rest = remaining;
        if is_raw_dropped(&name) {
            // Skip to the matching end tag, case-insensitively.
            let needle = format!("</{name}");
            rest = match find_ci(rest, &needle) {
                Some(pos) => {
                    let tail = &rest[pos..];
                    match tail.find('>') {
                        Some(end) => &tail[end + 1..],
                        None => "",
                    }
                }
                None => "",
            };
            continue;
        }
        builder.start(name, attrs, self_closing);
    }
    builder.finish()
}

/// Case-insensitive ASCII search.
fn find_ci(haystack: &str, needle: &str) -> Option<usize> {
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

/// Parses a start tag after its `<`: name, attributes, self-closing flag and
/// the input after the tag.
fn parse_tag(s: &str) -> (String, Vec<(String, String)>, bool, &str) {
    let name = tag_name(s);
    let name_end = s
        .char_indices()
        .find(|(_, c)| c.is_whitespace() || *c == '/' || *c == '>')
        .map_or(s.len(), |(i, _)| i);
    let mut rest = &s[name_end..];
    let mut attrs = Vec::new();
    let mut self_closing = false;
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            return (name, attrs, self_closing, rest);
        }
        if let Some(r) = rest.strip_prefix('>') {
            return (name, attrs, self_closing, r);
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
        let key_end = if key_end == 0 {
            // A stray '=': skip it.
            rest.chars().next().map_or(1, char::len_utf8)
        } else {
            key_end
        };
        let key = rest[..key_end].to_ascii_lowercase();
        rest = rest[key_end..].trim_start();
        let mut value = String::new();
        if let Some(r) = rest.strip_prefix('=') {
            let r = r.trim_start();
            if let Some(q) = r.chars().next().filter(|c| *c == '"' || *c == '\'') {
                let body = &r[1..];
                match body.find(q) {
                    Some(end) => {
                        value = decode_entities(&body[..end]);
                        rest = &body[end + 1..];
                    }
                    None => {
                        value = decode_entities(body);
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
        if !key.is_empty() && key != "=" && !attrs.iter().any(|(k, _)| *k == key) {
            attrs.push((key, value));
        }
    }
}

/// Builds the tree from tokens.
#[derive(Default)]
struct Builder {
    /// Open elements, innermost last; index 0 is a synthetic root.
    stack: Vec<Element>,
    /// Start tags ignored because of depth, still awaiting their end tag.
    ignored: usize,
}

impl Builder {
    fn ensure_root(&mut self) {
        if self.stack.is_empty() {
            self.stack.push(Element {
                name: String::new(),
                attrs: Vec::new(),
                children: Vec::new(),
            });
        }
    }

    fn push_node(&mut self, node: Node) {
        self.ensure_root();
        if let Some(top) = self.stack.last_mut() {
            if let (Node::Text(t), Some(Node::Text(prev))) = (&node, top.children.last_mut()) {
                prev.push_str(t);
                return;
            }
            top.children.push(node);
        }
    }

    fn text(&mut self, text: &str) {
        if !text.is_empty() {
            self.push_node(Node::Text(text.to_owned()));
        }
    }

    fn start(&mut self, name: String, attrs: Vec<(String, String)>, self_closing: bool) {
        self.ensure_root();
        let element = Element {
            name,
            attrs,
            children: Vec::new(),
        };
        if is_void(&element.name) || self_closing {
            self.push_node(Node::Element(element));
        } else if self.stack.len() > MAX_DEPTH {
            self.ignored += 1;
        } else {
            self.stack.push(element);
        }
    }

    fn end(&mut self, name: &str) {
        self.ensure_root();
        if is_void(name) {
            return;
        }
        let Some(pos) = self.stack.iter().skip(1).rposition(|e| e.name == name) else {
            self.ignored = self.ignored.saturating_sub(1);
            return;
        };
        let pos = pos + 1;
        while self.stack.len() > pos {
            self.close_top();
        }
    }

    fn close_top(&mut self) {
        if self.stack.len() <= 1 {
            return;
        }
        if let Some(done) = self.stack.pop() {
            self.push_node(Node::Element(done));
        }
    }

    fn finish(mut self) -> Vec<Node> {
        self.ensure_root();
        while self.stack.len() > 1 {
            self.close_top();
        }
        self.stack
            .pop()
            .map(|root| root.children)
            .unwrap_or_default()
    }
}

/// Decodes character references (`&amp;`, `&#39;`, `&#x1F44D;`…). Unknown or
/// malformed references are kept as written.
pub(crate) fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let end = rest
            .char_indices()
            .skip(1)
            .take(33)
            .find(|(_, c)| !c.is_ascii_alphanumeric() && *c != '#')
            .map(|(i, c)| (i, c == ';'));
        let (name_end, has_semi) = end.unwrap_or((rest.len().min(34), false));
        let name = rest.get(1..name_end).unwrap_or("");
        match decode_one(name) {
            Some(c) => {
                out.push_str(&c);
                rest = &rest[name_end + usize::from(has_semi)..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn decode_one(name: &str) -> Option<String> {
    if let Some(num) = name.strip_prefix('#') {
        let code = if let Some(hex) = num.strip_prefix(['x', 'X']) {
            u32::from_str_radix(hex, 16).ok()?
        } else {
            num.parse::<u32>().ok()?
        };
        let c = match char::from_u32(code) {
            Some('\0') | None => '\u{FFFD}',
            Some(c) => c,
        };
        return Some(c.to_string());
    }
    let c = match name {
        "amp" | "AMP" => "&",
        "lt" | "LT" => "<",
        "gt" | "GT" => ">",
        "quot" | "QUOT" => "\"",
        "apos" => "'",
        "nbsp" => "\u{a0}",
        "copy" => "©",
        "reg" => "®",
        "trade" => "™",
        "hellip" => "…",
        "mdash" => "—",
        "ndash" => "–",
        "lsquo" => "‘",
        "rsquo" => "’",
        "ldquo" => "“",
        "rdquo" => "”",
        "bull" => "•",
        "middot" => "·",
        "zwj" => "\u{200d}",
        "zwnj" => "\u{200c}",
        "euro" => "€",
        "times" => "×",
        _ => return None,
    };
    Some(c.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_a_tree() {
        let nodes = parse_fragment("<div a=1 B='x'><b>hi</b> &amp; <br/>bye</div>");
        let [Node::Element(div)] = nodes.as_slice() else {
            panic!("one div: {nodes:?}")
        };
        assert_eq!(div.attr("a"), Some("1"));
        assert_eq!(div.attr("b"), Some("x"));
        assert_eq!(div.children.len(), 4);
    }

    #[test]
    fn drops_scripts_and_keeps_stray_text() {
        let nodes = parse_fragment("a<script>alert(1)</SCRIPT>b < c</p>");
        assert_eq!(nodes, vec![Node::Text("ab < c".into())]);
    }

    #[test]
    fn entities() {
        assert_eq!(
            decode_entities("&lt;&#x1F44D;&#65;&bogus;&"),
            "<👍A&bogus;&"
        );
    }

    #[test]
    fn deep_nesting_is_bounded() {
        let html = "<b>".repeat(10_000) + "x";
        let nodes = parse_fragment(&html);
        assert!(!nodes.is_empty());
    }
}
