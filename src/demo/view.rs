//! What a platform shows, reduced to what the demo prints and compares: one
//! [`Shown`] per visible message, read back from the platform's own API,
//! and the side-by-side columns they are printed in.

use std::fmt::Write as _;

/// One message as a platform shows it now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shown {
    /// The platform's id of it (a Slack `ts`, a Teams `id` or `root/id` for
    /// a reply, a Matrix event id).
    pub id: String,
    /// Who it shows as the author.
    pub author: String,
    /// The platform's id of the account that posted it.
    pub author_id: String,
    /// The text in the platform's own dialect, on one line (Slack mrkdwn,
    /// Teams HTML, Matrix HTML or plain body).
    pub text: String,
    /// The text without markup, for comparing platforms.
    pub plain: String,
    /// A reply in a thread.
    pub thread: bool,
    /// Edited since it was posted.
    pub edited: bool,
    /// Reactions on it, as emoji.
    pub reactions: Vec<String>,
    /// Names of the files or images it carries.
    pub files: Vec<String>,
    /// A call: a huddle, a call card or a call notice.
    pub call: bool,
}

impl Shown {
    /// One line: `↳ Author: text 📎 file (edited) 👍`.
    pub fn line(&self) -> String {
        let mut s = String::new();
        if self.thread {
            s.push_str("↳ ");
        }
        let _ = write!(s, "{}:", self.author);
        if !self.text.is_empty() {
            let _ = write!(s, " {}", self.text);
        }
        for f in &self.files {
            let _ = write!(s, " 📎 {f}");
        }
        if self.edited {
            s.push_str(" (edited)");
        }
        for r in &self.reactions {
            let _ = write!(s, " {r}");
        }
        s
    }

    /// Whether its plain text contains `key`.
    pub fn says(&self, key: &str) -> bool {
        self.plain.contains(key)
    }
}

/// How many messages of `view` say `key`.
pub fn count(view: &[Shown], key: &str) -> usize {
    view.iter().filter(|m| m.says(key)).count()
}

/// The first message of `view` saying `key`.
pub fn find<'a>(view: &'a [Shown], key: &str) -> Option<&'a Shown> {
    view.iter().find(|m| m.says(key))
}

/// Removes HTML tags (an `<img alt="x">` becomes `[image x]`), turns
/// `<br>` and paragraph ends into spaces and decodes the common entities.
pub fn strip_html(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('>') else {
            rest = &rest[start..];
            break;
        };
        let tag = &rest[start + 1..start + end];
        let name = tag
            .trim_start_matches('/')
            .split(|c: char| c.is_whitespace() || c == '/')
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        match name.as_str() {
            "br" | "p" | "div" | "li" if tag.starts_with('/') || name == "br" => out.push(' '),
            "img" => {
                let alt = attribute(tag, "alt").unwrap_or_else(|| "image".to_owned());
                let _ = write!(out, "[image {alt}]");
            }
            _ => {}
        }
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    collapse(&unescape(&out))
}

/// HTML as the demo prints it, on one line: paragraphs and line breaks as
/// spaces, images left out (a message's files are listed after it), the
/// relay marker and other attributes dropped, a long link target shortened
/// to `…`; inline markup (`<b>`, `<i>`, `<code>`, `<at>`, `<a>`) kept.
pub fn display_html(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('>') else {
            rest = &rest[start..];
            break;
        };
        let tag = &rest[start + 1..start + end];
        let closing = tag.starts_with('/');
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        match name.to_ascii_lowercase().as_str() {
            "p" | "div" | "br" => out.push(' '),
            "img" | "span" | "mx-reply" => {}
            "a" if !closing => match attribute(tag, "href") {
                Some(href) if href.chars().count() <= 30 => {
                    let _ = write!(out, "<a href=\"{href}\">");
                }
                _ => out.push_str("<a href=\"…\">"),
            },
            _ if closing => {
                let _ = write!(out, "</{name}>");
            }
            _ => {
                let _ = write!(out, "<{name}>");
            }
        }
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    collapse(&out.replace("&nbsp;", " "))
}

/// The value of attribute `name` in the inside of a tag.
pub fn attribute(tag: &str, name: &str) -> Option<String> {
    let at = tag.find(&format!("{name}=\""))?;
    let value = &tag[at + name.len() + 2..];
    value.find('"').map(|end| unescape(&value[..end]))
}

/// Decodes `&amp;`, `&lt;`, `&gt;`, `&quot;`, `&#39;` and `&nbsp;`.
pub fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&")
}

/// Runs of whitespace become one space; trimmed.
pub fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Column width of the side-by-side views.
pub const WIDTH: usize = 36;

/// Prints cells side by side, each wrapped to [`WIDTH`] characters (at most
/// `max_lines` lines each), separated by ` │ `.
pub fn print_columns(cells: &[String], max_lines: usize) {
    let wrapped: Vec<Vec<String>> = cells.iter().map(|c| wrap(c, WIDTH, max_lines)).collect();
    let lines = wrapped.iter().map(Vec::len).max().unwrap_or(0);
    for i in 0..lines {
        let row: Vec<String> = wrapped
            .iter()
            .map(|cell| pad(cell.get(i).map(String::as_str).unwrap_or(""), WIDTH))
            .collect();
        println!("  {}", row.join(" │ ").trim_end());
    }
}

/// `s` padded with spaces to `width` characters.
pub fn pad(s: &str, width: usize) -> String {
    let n = s.chars().count();
    format!("{s}{}", " ".repeat(width.saturating_sub(n)))
}

/// Wraps `text` at spaces to lines of at most `width` characters, cutting
/// words longer than that; beyond `max_lines` the last line ends in `…`.
pub fn wrap(text: &str, width: usize, max_lines: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let mut word: String = word.to_owned();
        loop {
            let used = line.chars().count();
            let len = word.chars().count();
            let need = if used == 0 { len } else { used + 1 + len };
            if need <= width {
                if used > 0 {
                    line.push(' ');
                }
                line.push_str(&word);
                break;
            }
            if used > 0 {
                lines.push(std::mem::take(&mut line));
                continue;
            }
            // A word longer than the column: cut it.
            let head: String = word.chars().take(width).collect();
            word = word.chars().skip(width).collect();
            lines.push(head);
            if word.is_empty() {
                break;
            }
        }
    }
    if !line.is_empty() {
        lines.push(line);
    }
    if lines.len() > max_lines {
        lines.truncate(max_lines);
        if let Some(last) = lines.last_mut() {
            let keep: String = last.chars().take(width.saturating_sub(1)).collect();
            *last = format!("{keep}…");
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_stripped_to_text() {
        assert_eq!(
            strip_html("<p>Hi <b>there</b> &amp; <at id=\"0\">Dee</at></p><p>x<br>y</p>"),
            "Hi there & Dee x y"
        );
        assert_eq!(
            strip_html("see <img src=\"../hostedContents/0/$value\" alt=\"chart.png\">"),
            "see [image chart.png]"
        );
    }

    #[test]
    fn html_is_shown_compactly() {
        assert_eq!(
            display_html(
                "<p>Hi&nbsp;<b>there</b> <at id=\"0\">Dee</at> <img src=\"x\" alt=\"a.png\"></p>\
                 <span itemid=\"m:1\"></span>"
            ),
            "Hi <b>there</b> <at>Dee</at>"
        );
        assert_eq!(
            display_html("<a href=\"https://matrix.to/#/@someone:localhost:1234\">Ann</a>"),
            "<a href=\"…\">Ann</a>"
        );
        assert_eq!(
            display_html("<a href=\"https://x.test\">x</a>"),
            "<a href=\"https://x.test\">x</a>"
        );
    }

    #[test]
    fn text_wraps_into_columns() {
        assert_eq!(wrap("aaa bbb ccc", 7, 3), ["aaa bbb", "ccc"]);
        assert_eq!(wrap("abcdefghij", 4, 3), ["abcd", "efgh", "ij"]);
        assert_eq!(wrap("aa bb cc dd", 2, 2), ["aa", "b…"]);
        assert_eq!(pad("ab", 4), "ab  ");
    }

    #[test]
    fn a_line_shows_marks() {
        let m = Shown {
            author: "Ann".into(),
            text: "hi".into(),
            thread: true,
            edited: true,
            reactions: vec!["👍".into()],
            files: vec!["a.png".into()],
            ..Shown::default()
        };
        assert_eq!(m.line(), "↳ Ann: hi 📎 a.png (edited) 👍");
    }
}
