//! Unit and property tests for Matrix formatting.

use super::*;
use proptest::prelude::*;
use std::sync::LazyLock;
use switchboard_model::ChannelId;

const SERVER: &str = "example.org";

static MATRIX: LazyLock<BridgeId> = LazyLock::new(|| BridgeId::new("matrix:test"));

fn matrix() -> BridgeId {
    MATRIX.clone()
}

/// People here have ghosts `@slack_<user>:example.org`.
fn slack() -> BridgeId {
    BridgeId::new("slack:test")
}

/// People here have no ghosts.
fn teams() -> BridgeId {
    BridgeId::new("teams:test")
}

fn ghost_of(bridge: &BridgeId, user: &UserId) -> Option<String> {
    (*bridge == slack()).then(|| format!("@slack_{user}:{SERVER}"))
}

fn person_of_ghost(mxid: &str) -> Option<(BridgeId, UserId)> {
    let user = mxid.strip_prefix("@slack_")?.strip_suffix(":example.org")?;
    Some((slack(), UserId::new(user)))
}

fn ctx() -> FormatContext<'static> {
    FormatContext {
        bridge: &MATRIX,
        server_name: SERVER,
        ghost_of: &ghost_of,
        person_of_ghost: &person_of_ghost,
    }
}

fn html(formatted: &str) -> RichText {
    parse("fallback", Some(formatted), &ctx())
}

fn plain(body: &str) -> RichText {
    parse(body, None, &ctx())
}

fn para(content: Vec<Inline>) -> Block {
    Block::Paragraph { content }
}

fn t(s: &str) -> Inline {
    Inline::text(s)
}

// ---------------------------------------------------------------- parsing

#[test]
fn plain_body_is_text_without_markdown() {
    assert_eq!(
        plain("**not bold** _x_ `y`\nline two\n\npara <b>two</b>\n"),
        RichText::plain("**not bold** _x_ `y`\nline two\n\npara <b>two</b>")
    );
    assert_eq!(
        plain("hey @room, look"),
        RichText {
            blocks: vec![para(vec![t("hey "), Inline::RoomMention, t(", look")])]
        }
    );
    // Not room mentions.
    for s in ["a@room", "@roomy", "@room:example.org", "mail@room.org"] {
        assert_eq!(plain(s), RichText::plain(s), "{s}");
    }
}

#[test]
fn formatted_body_wins_and_empty_html_falls_back() {
    assert_eq!(
        parse("*hi*", Some("<em>hi</em>"), &ctx()),
        RichText::builder().italic("hi").build()
    );
    assert_eq!(
        parse("hi", Some("<script>x</script>"), &ctx()),
        RichText::plain("hi")
    );
    assert_eq!(parse("hi", Some(""), &ctx()), RichText::plain("hi"));
}

#[test]
fn parses_inline_formatting() {
    let body = html(
        "<b>b</b> <strong>s</strong> <i>i</i> <em>e</em> <del>d</del> <strike>k</strike> \
         <s>x</s> <u>under</u> <sup>up</sup><sub>down</sub> <font color=\"red\">f</font> \
         <span data-mx-spoiler=\"why\">secret</span> <code>a  &lt;b&gt;</code>",
    );
    let expected = RichText::builder()
        .bold("b")
        .text(" ")
        .bold("s")
        .text(" ")
        .italic("i")
        .text(" ")
        .italic("e")
        .text(" ")
        .strike("d")
        .text(" ")
        .strike("k")
        .text(" ")
        .strike("x")
        .text(" under updown f secret ")
        .code("a  <b>")
        .build();
    assert_eq!(body, expected);
}

#[test]
fn parses_code_blocks() {
    let body = html(
        "<pre><code class=\"language-rust\">fn main() {\n    x &lt; y;\n}\n</code></pre>\
         <pre>\nplain\ncode</pre><pre class=\"language-json\">{}</pre>\
         <pre><code class=\"hljs language-\">no lang</code></pre>",
    );
    let expected = RichText::builder()
        .code_block(Some("rust"), "fn main() {\n    x < y;\n}")
        .code_block(None, "plain\ncode")
        .code_block(Some("json"), "{}")
        .code_block(None, "no lang")
        .build();
    assert_eq!(body, expected);
}

#[test]
fn parses_quotes_lists_headings_and_blocks() {
    let body = html(
        "<h1>Title <i>x</i></h1>\n<p>one</p>\n<blockquote><p>q1</p><p>q2</p></blockquote>\n\
         <ol start=\"3\">\n<li>a</li>\n<li>b<ul><li>deep</li></ul></li>\n</ol>\
         <hr><div>d1<br />d2</div><table><tr><td>c1</td><td>c2</td></tr></table>\
         <details><summary>more</summary>hidden</details>",
    );
    let expected = RichText {
        blocks: vec![
            para(vec![Inline::Bold {
                content: vec![
                    t("Title "),
                    Inline::Italic {
                        content: vec![t("x")],
                    },
                ],
            }]),
            para(vec![t("one")]),
            Block::Quote {
                blocks: vec![para(vec![t("q1")]), para(vec![t("q2")])],
            },
            Block::List {
                ordered: true,
                items: vec![
                    vec![para(vec![t("a")])],
                    vec![
                        para(vec![t("b")]),
                        Block::List {
                            ordered: false,
                            items: vec![vec![para(vec![t("deep")])]],
                        },
                    ],
                ],
            },
            para(vec![t("d1"), Inline::LineBreak, t("d2")]),
            para(vec![t("c1")]),
            para(vec![t("c2")]),
            para(vec![t("more")]),
            para(vec![t("hidden")]),
        ],
    };
    assert_eq!(body, expected);
}

#[test]
fn parses_links_by_scheme() {
    let body = html(
        "<a href=\"https://a.org/x?y=1&amp;z=2\">A</a> <a href=\"http://b.org\">http://b.org</a> \
         <a href=\"ftp://c.org/f\">C</a> <a href=\"mailto:d@e.org\">D</a> \
         <a href=\"magnet:?xt=urn:btih:abc\">M</a> <a href=\"javascript:alert(1)\">J</a> \
         <a href=\"data:text/html,<b>x</b>\">Data</a> <a href=\"vbscript:x\">V</a> \
         <a href=\"file:///etc/passwd\">F</a> <a>none</a>",
    );
    let expected = RichText::builder()
        .link("https://a.org/x?y=1&z=2", "A")
        .text(" ")
        .link("http://b.org", "")
        .text(" ")
        .link("ftp://c.org/f", "C")
        .text(" ")
        .link("mailto:d@e.org", "D")
        .text(" ")
        .link("magnet:?xt=urn:btih:abc", "M")
        .text(" J Data V F none")
        .build();
    assert_eq!(body, expected);
}

#[test]
fn parses_pills() {
    let body = html(
        "<a href=\"https://matrix.to/#/@alice:example.org\">Alice</a>: hi \
         <a href=\"https://matrix.to/#/%40slack_u1%3Aexample.org?via=example.org\">Sam  Slack</a> \
         <a href=\"matrix:u/bob:other.org\"></a> \
         <a href=\"https://matrix.to/#/!room:example.org\">General</a> \
         <a href=\"https://matrix.to/#/#alias:example.org\">alias</a> \
         <a href=\"https://matrix.to/#/!room:example.org/$event\">event</a> @room",
    );
    let expected = RichText::builder()
        .mention(matrix(), "@alice:example.org".into(), "Alice")
        .text(": hi ")
        .mention(slack(), "u1".into(), "Sam Slack")
        .text(" ")
        .mention(matrix(), "@bob:other.org".into(), "@bob:other.org")
        .text(" ")
        .channel(matrix(), ChannelId::new("!room:example.org"), "General")
        .text(" ")
        .link("https://matrix.to/#/#alias:example.org", "alias")
        .text(" ")
        .link("https://matrix.to/#/!room:example.org/$event", "event")
        .text(" ")
        .room_mention()
        .build();
    assert_eq!(body, expected);
}

#[test]
fn parses_images() {
    let body = html(
        "<img data-mx-emoticon src=\"mxc://x/y\" alt=\":party:\" height=\"32\"> \
         <img src=\"mxc://x/z\" alt=\"cat.png\"> <img src=\"mxc://x/w\" title=\"T\"> \
         <img src=\"https://example.org/i.png\"> <img src=\"mxc://x/v\"> \
         <img src=\"javascript:x\"> <img src=\"data:image/png;base64,AAAA\">",
    );
    let expected = RichText::builder()
        .emoji("party", None)
        .text(" cat.png T ")
        .link("https://example.org/i.png", "")
        .build();
    assert_eq!(body, expected);
}

#[test]
fn whitespace_collapses_and_nbsp_survives() {
    assert_eq!(
        html("<p>\n  a \n b  </p>\n<p>&nbsp;</p><p> <b> </b> </p>"),
        RichText::plain("a b")
    );
    assert_eq!(
        html("a&nbsp;&nbsp;b<br>\n c &nbsp;"),
        RichText::plain("a  b\nc  ")
    );
}

#[test]
fn strips_reply_fallbacks() {
    let formatted = "<mx-reply><blockquote><a href=\"https://matrix.to/#/!r:s/$e\">In reply to</a> \
                     <a href=\"https://matrix.to/#/@alice:example.org\">@alice</a><br>original <b>text</b>\
                     </blockquote></mx-reply>my <i>answer</i>";
    let body = "> <@alice:example.org> original text\n> more\n\nmy answer";
    let expected = RichText::builder().text("my ").italic("answer").build();
    assert_eq!(parse(body, Some(formatted), &ctx()), expected);
    assert_eq!(plain(body), RichText::plain("my answer"));
    assert_eq!(
        plain("> * <@alice:example.org> waves\r\n\r\nhello"),
        RichText::plain("hello")
    );
    // Ordinary quotes and quotes without a blank line after them stay.
    for body in ["> a quote\n\ntext", "> <@alice:example.org> x\nno blank"] {
        assert_eq!(plain(body), RichText::plain(body), "{body}");
    }
}

#[test]
fn hostile_html_is_neutralised() {
    let body = html(
        "<script>alert(1)</script><style>p{}</style><iframe src=\"https://evil\">in</iframe>\
         <object data=\"x\">obj</object><embed src=x><svg><text>s</text></svg>\
         <a href=\"javascript:alert(2)\" onclick=\"x()\">click</a>\
         <img src=x onerror=alert(3)><a href=\" JAVASCRIPT:y\">j</a>\
         <a href=\"java&#x09;script:z\">k</a><p style=\"color:red\" onmouseover=\"x\">ok</p>\
         <a href=\"data:text/html;base64,PHNjcmlwdD4=\">d</a>",
    );
    assert_eq!(
        body,
        RichText::builder()
            .text("clickjk")
            .paragraph()
            .text("ok")
            .paragraph()
            .text("d")
            .build()
    );
    let rendered = render(&body, &ctx());
    assert_eq!(rendered.formatted_body, None);
}

#[test]
fn unclosed_and_stray_tags_are_harmless() {
    assert_eq!(
        html("<b>bold <i>both</b> after</i> </p></div> <ul><li>a<li>b"),
        RichText {
            blocks: vec![
                para(vec![
                    Inline::Bold {
                        content: vec![
                            t("bold "),
                            Inline::Italic {
                                content: vec![t("both")]
                            }
                        ]
                    },
                    t(" after")
                ]),
                Block::List {
                    ordered: false,
                    items: vec![vec![para(vec![t("a")])], vec![para(vec![t("b")])]]
                }
            ]
        }
    );
    assert_eq!(html("a < b <"), RichText::plain("a < b <"));
    assert_eq!(
        html("<a href=\"https://x.org\">x"),
        RichText::builder().link("https://x.org", "x").build()
    );
    assert_eq!(
        html("<pre><code>unclosed"),
        RichText::builder().code_block(None, "unclosed").build()
    );
}

#[test]
fn deep_nesting_is_bounded() {
    for open in [
        "<b>",
        "<blockquote>",
        "<ul><li>",
        "<a href=\"https://x.org\">",
        "<div><i>",
    ] {
        let input = open.repeat(20_000) + "x";
        let body = html(&input);
        assert!(!body.is_empty(), "{open}");
        let shown = body.to_plain();
        assert!(
            shown
                .trim_start_matches(['>', ' ', '•', '\n'])
                .starts_with('x'),
            "{open}"
        );
        let rendered = render(&body, &ctx());
        assert_safe(rendered.formatted_body.as_deref().unwrap_or(""));
    }
}

#[test]
fn large_hostile_input_is_bounded() {
    let chunk = "<div><b><i><a href=\"https://x.org\"><script>x</script>\
                 <a href=\"https://matrix.to/#/@a:b\">A</a>&amp;<ul><li><mx-reply>";
    let input = chunk.repeat(5_000) + &"</b>".repeat(5_000) + &"<p>".repeat(20_000);
    let start = std::time::Instant::now();
    let body = html(&input);
    let rendered = render(&body, &ctx());
    assert_safe(rendered.formatted_body.as_deref().unwrap_or(""));
    assert!(start.elapsed() < std::time::Duration::from_secs(20));
}

// ---------------------------------------------------------------- rendering

#[test]
fn renders_plain_text_without_html() {
    let r = render(&RichText::plain("hello *world*\nline\n\npara"), &ctx());
    assert_eq!(
        r,
        Rendered {
            body: "hello *world*\nline\n\npara".into(),
            formatted_body: None,
            mentioned_users: vec![],
            room_mention: false,
        }
    );
    let r = render(&RichText::new(), &ctx());
    assert_eq!((r.body.as_str(), r.formatted_body), ("", None));
}

#[test]
fn renders_room_mentions_without_html() {
    let text = RichText::builder()
        .text("all: ")
        .room_mention()
        .emoji("wave", Some("👋"))
        .build();
    let r = render(&text, &ctx());
    assert_eq!(r.body, "all: @room👋");
    assert_eq!(r.formatted_body, None);
    assert!(r.room_mention);
    assert!(r.mentioned_users.is_empty());
}

#[test]
fn renders_formatting() {
    let text = RichText::builder()
        .bold("b")
        .text(" ")
        .italic("i")
        .text(" ")
        .strike("s")
        .text(" a < b & ")
        .code("x<y")
        .line_break()
        .link("https://x.org/?a=1&b=\"2\"", "label")
        .text(" ")
        .link("https://y.org", "")
        .text(" ")
        .link("javascript:alert(1)", "bad")
        .build();
    let r = render(&text, &ctx());
    assert_eq!(
        r.formatted_body.as_deref(),
        Some(
            "<strong>b</strong> <em>i</em> <del>s</del> a &lt; b &amp; <code>x&lt;y</code><br>\
             <a href=\"https://x.org/?a=1&amp;b=&quot;2&quot;\">label</a> \
             <a href=\"https://y.org\">https://y.org</a> bad"
        )
    );
    assert_eq!(
        r.body,
        "b i s a < b & x<y\nlabel (https://x.org/?a=1&b=\"2\") https://y.org bad (javascript:alert(1))"
    );
}

#[test]
fn renders_blocks() {
    let text = RichText::builder()
        .text("intro")
        .code_block(Some("rust"), "fn main() {\n    a < b\n}")
        .code_block(None, "plain")
        .quote(RichText::plain("quoted"))
        .list(
            true,
            vec![
                RichText::plain("one"),
                RichText::builder()
                    .text("two")
                    .list(false, vec![RichText::plain("deep")])
                    .build(),
            ],
        )
        .build();
    let r = render(&text, &ctx());
    assert_eq!(
        r.formatted_body.as_deref(),
        Some(
            "<p>intro</p><pre><code class=\"language-rust\">fn main() {\n    a &lt; b\n}</code></pre>\
             <pre><code>plain</code></pre><blockquote>quoted</blockquote>\
             <ol><li>one</li><li><p>two</p><ul><li>deep</li></ul></li></ol>"
        )
    );
    assert_eq!(parse(&r.body, r.formatted_body.as_deref(), &ctx()), text);
}

#[test]
fn renders_mentions() {
    let text = RichText::builder()
        .mention(matrix(), "@alice:example.org".into(), "Alice")
        .text(" ")
        .mention(slack(), "u1".into(), "Sam")
        .text(" ")
        .mention(teams(), "aad-1".into(), "Tina")
        .text(" ")
        .mention(matrix(), "@alice:example.org".into(), "Alice")
        .text(" ")
        .mention(matrix(), "not-an-mxid".into(), "Odd")
        .text(" ")
        .channel(matrix(), "!r:example.org".into(), "General")
        .text(" ")
        .channel(slack(), "C1".into(), "random")
        .text(" ")
        .room_mention()
        .build();
    let r = render(&text, &ctx());
    assert_eq!(
        r.formatted_body.as_deref(),
        Some(
            "<a href=\"https://matrix.to/#/@alice:example.org\">Alice</a> \
             <a href=\"https://matrix.to/#/@slack_u1:example.org\">Sam</a> @Tina \
             <a href=\"https://matrix.to/#/@alice:example.org\">Alice</a> @Odd \
             <a href=\"https://matrix.to/#/!r:example.org\">General</a> #random @room"
        )
    );
    assert_eq!(
        r.body,
        "@Alice @Sam @Tina @Alice @Odd #General #random @room"
    );
    assert_eq!(
        r.mentioned_users,
        ["@alice:example.org", "@slack_u1:example.org"]
    );
    assert!(r.room_mention);
    // Fallback mentions are text only.
    let r = render(
        &RichText::builder()
            .mention(teams(), "x".into(), "Tina")
            .build(),
        &ctx(),
    );
    assert_eq!((r.body.as_str(), r.formatted_body), ("@Tina", None));
    assert!(r.mentioned_users.is_empty());
}

#[test]
fn pill_ids_are_percent_encoded() {
    let text = RichText::builder()
        .mention(matrix(), "@we/ird?#%:example.org".into(), "W")
        .build();
    let r = render(&text, &ctx());
    assert_eq!(
        r.formatted_body.as_deref(),
        Some("<a href=\"https://matrix.to/#/@we%2Fird%3F%23%25:example.org\">W</a>")
    );
    assert_eq!(parse(&r.body, r.formatted_body.as_deref(), &ctx()), text);
}

#[test]
fn renders_spaces_that_would_collapse() {
    let text = RichText::builder()
        .text(" lead  double ")
        .line_break()
        .bold("b ")
        .build();
    let r = render(&text, &ctx());
    assert_eq!(
        r.formatted_body.as_deref(),
        Some("&nbsp;lead &nbsp;double&nbsp;<br><strong>b&nbsp;</strong>")
    );
    assert_eq!(parse(&r.body, r.formatted_body.as_deref(), &ctx()), text);
}

#[test]
fn dialect_converts() {
    let d = MatrixDialect;
    assert_eq!(d.name(), "matrix");
    let body = d
        .parse(
            r#"{"body": "*x*", "format": "org.matrix.custom.html", "formatted_body": "<b>x</b>"}"#,
        )
        .expect("parses");
    assert_eq!(body, RichText::builder().bold("x").build());
    let json: serde_json::Value = serde_json::from_str(&d.render(&body)).expect("json");
    assert_eq!(
        json,
        serde_json::json!({"msgtype": "m.text", "body": "x", "format": HTML_FORMAT,
            "formatted_body": "<strong>x</strong>"})
    );
    assert_eq!(
        d.parse("just *text*\n").expect("plain"),
        RichText::plain("just *text*")
    );
    assert_eq!(
        d.parse(r#"{"body": "b", "format": "other", "formatted_body": "<i>h</i>"}"#)
            .expect("parses"),
        RichText::plain("b")
    );
    let err = d.parse(r#"{"msgtype": "m.text"}"#).expect_err("no body");
    assert!(err.to_string().starts_with("cannot parse matrix:"), "{err}");
    let json: serde_json::Value =
        serde_json::from_str(&d.render(&RichText::builder().room_mention().build())).expect("json");
    assert_eq!(json["m.mentions"], serde_json::json!({"room": true}));
}

// ---------------------------------------------------------------- properties

/// Checks that HTML only uses the tags and attributes the renderer may write.
fn assert_safe(html: &str) {
    let lower = html.to_ascii_lowercase();
    assert!(!lower.contains("<script"), "{html}");
    assert!(!lower.contains("javascript:"), "{html}");
    assert!(!lower.contains("style="), "{html}");
    assert!(!lower.contains("mx-reply"), "{html}");
    let mut rest = html;
    while let Some(lt) = rest.find('<') {
        let tag = &rest[lt + 1..];
        let end = tag.find('>').expect("closed tag");
        let inner = tag[..end].trim_start_matches('/');
        let mut words = inner.split_whitespace();
        let name = words.next().unwrap_or("");
        assert!(
            [
                "p",
                "br",
                "strong",
                "em",
                "del",
                "code",
                "pre",
                "a",
                "blockquote",
                "ul",
                "ol",
                "li"
            ]
            .contains(&name),
            "tag {name:?} in {html}"
        );
        for attr in words {
            let (key, value) = attr.split_once('=').unwrap_or((attr, ""));
            let value = value.trim_matches('"').to_ascii_lowercase();
            match key {
                "href" => assert!(
                    ["https://", "http://", "ftp://", "mailto:", "magnet:"]
                        .iter()
                        .any(|s| value.starts_with(s)),
                    "href {attr} in {html}"
                ),
                "class" => assert!(value.starts_with("language-"), "{attr} in {html}"),
                _ => panic!("attr {key:?} in {html}"),
            }
        }
        rest = &tag[end..];
    }
}

/// What Matrix can carry of `body`: mentions without a Matrix identity, in
/// link labels or of other bridges' channels become text, emoji their
/// character, room mentions `@room` text that is read back where it is not
/// glued to a word.
fn matrix_form(body: &RichText) -> RichText {
    fn lower(items: &[Inline], in_link: bool) -> Vec<Inline> {
        items
            .iter()
            .map(|item| match item {
                Inline::UserMention { bridge, name, .. }
                    if in_link || (*bridge != matrix() && *bridge != slack()) =>
                {
                    Inline::text(format!("@{name}"))
                }
                Inline::ChannelMention { bridge, name, .. } if in_link || *bridge != matrix() => {
                    Inline::text(format!("#{name}"))
                }
                Inline::RoomMention => Inline::text("@room"),
                Inline::Emoji { name, unicode } => {
                    Inline::text(unicode.clone().unwrap_or_else(|| format!(":{name}:")))
                }
                Inline::Bold { content } => Inline::Bold {
                    content: lower(content, in_link),
                },
                Inline::Italic { content } => Inline::Italic {
                    content: lower(content, in_link),
                },
                Inline::Strike { content } => Inline::Strike {
                    content: lower(content, in_link),
                },
                Inline::Link { url, content } => Inline::Link {
                    url: url.clone(),
                    content: lower(content, true),
                },
                other => other.clone(),
            })
            .collect()
    }
    fn blocks(list: &[Block]) -> Vec<Block> {
        list.iter()
            .map(|b| match b {
                Block::Paragraph { content } => Block::Paragraph {
                    content: lower(content, false),
                },
                Block::Quote { blocks: inner } => Block::Quote {
                    blocks: blocks(inner),
                },
                Block::List { ordered, items } => Block::List {
                    ordered: *ordered,
                    items: items.iter().map(|i| blocks(i)).collect(),
                },
                other => other.clone(),
            })
            .collect()
    }
    fn detect(blocks: &mut [Block]) {
        for b in blocks {
            match b {
                Block::Paragraph { content } => split_room_mentions(content),
                Block::Quote { blocks } => detect(blocks),
                Block::List { items, .. } => items.iter_mut().for_each(|i| detect(i)),
                Block::CodeBlock { .. } => {}
            }
        }
    }
    let mut out = RichText {
        blocks: blocks(&body.blocks),
    };
    out.normalize();
    detect(&mut out.blocks);
    out.normalize();
    out
}

fn text_run() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9éü👍<>&\"'][a-zA-Z0-9 ,.!?éü👍<>&\"'*_`#]{0,11}"
}

fn name() -> impl Strategy<Value = String> {
    "[A-Z][a-z]{0,6}( [A-Z][a-z]{0,5})?"
}

fn inline_leaf() -> impl Strategy<Value = Inline> {
    prop_oneof![
        4 => text_run().prop_map(Inline::text),
        1 => "[a-z<&][a-z <&]{0,7}".prop_map(|code| Inline::Code { code }),
        1 => Just(Inline::LineBreak),
        1 => Just(Inline::RoomMention),
        1 => ("@[a-z][a-z0-9.=-]{0,7}:example\\.org", name()).prop_map(|(u, n)| {
            Inline::UserMention {
                bridge: matrix(),
                user: u.as_str().into(),
                name: n,
            }
        }),
        1 => ("[a-z0-9]{1,8}", name()).prop_map(|(u, n)| Inline::UserMention {
            bridge: slack(),
            user: u.as_str().into(),
            name: n,
        }),
        1 => ("[A-Za-z0-9-]{1,10}", name()).prop_map(|(u, n)| Inline::UserMention {
            bridge: teams(),
            user: u.as_str().into(),
            name: n,
        }),
        1 => ("![a-zA-Z0-9]{1,8}(:example\\.org)?", name()).prop_map(|(c, n)| {
            Inline::ChannelMention {
                bridge: matrix(),
                channel: c.as_str().into(),
                name: n,
            }
        }),
        1 => ("C[A-Z0-9]{1,6}", "[a-z-]{1,8}").prop_map(|(c, n)| Inline::ChannelMention {
            bridge: slack(),
            channel: c.as_str().into(),
            name: n,
        }),
        1 => ("[a-z_]{1,8}", proptest::option::of(Just("👍".to_owned())))
            .prop_map(|(name, unicode)| Inline::Emoji { name, unicode }),
    ]
}

fn inline_no_link() -> impl Strategy<Value = Inline> {
    inline_leaf().prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..3).prop_map(|content| Inline::Bold { content }),
            prop::collection::vec(inner.clone(), 1..3)
                .prop_map(|content| Inline::Italic { content }),
            prop::collection::vec(inner, 1..3).prop_map(|content| Inline::Strike { content }),
        ]
    })
}

fn inline() -> impl Strategy<Value = Inline> {
    prop_oneof![
        3 => inline_no_link(),
        1 => (
            "(https|http|ftp)://[a-z]{1,8}\\.org(/[a-z?=&]{0,5})?|mailto:[a-z]{1,5}@[a-z]{1,5}\\.org",
            prop::collection::vec(inline_no_link(), 0..3)
        )
            .prop_map(|(url, content)| Inline::Link { url, content }),
    ]
}

fn richtext() -> impl Strategy<Value = RichText> {
    let block = prop_oneof![
        prop::collection::vec(inline(), 1..5).prop_map(|content| Block::Paragraph { content }),
        (
            proptest::option::of("[a-z]{1,5}"),
            "[a-z(){};<&\n ]{0,19}[a-z(){};<&]"
        )
            .prop_map(|(language, code)| Block::CodeBlock { language, code }),
    ];
    let block = block.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..3).prop_map(|blocks| Block::Quote { blocks }),
            (
                any::<bool>(),
                prop::collection::vec(prop::collection::vec(inner, 1..3), 1..3)
            )
                .prop_map(|(ordered, items)| Block::List { ordered, items }),
        ]
    });
    prop::collection::vec(block, 0..4).prop_map(|blocks| {
        let mut body = RichText { blocks };
        body.normalize();
        body
    })
}

/// HTML-ish input: tags, attributes, entities and text.
fn htmlish() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        "[a-z <>&;#/=\"' \n\u{a0}@]{0,8}",
        Just("@room".to_owned()),
        Just("<b>".to_owned()),
        Just("</b>".to_owned()),
        Just("<p>".to_owned()),
        Just("</p>".to_owned()),
        Just("<div>".to_owned()),
        Just("</div>".to_owned()),
        Just("<br>".to_owned()),
        Just("<br/>".to_owned()),
        Just("<i>".to_owned()),
        Just("</em>".to_owned()),
        Just("<del>".to_owned()),
        Just("<code>".to_owned()),
        Just("</code>".to_owned()),
        Just("<pre>".to_owned()),
        Just("<pre><code class=\"language-rust\">".to_owned()),
        Just("</pre>".to_owned()),
        Just("<blockquote>".to_owned()),
        Just("</blockquote>".to_owned()),
        Just("<ul><li>".to_owned()),
        Just("</li>".to_owned()),
        Just("<ol start=\"4\">".to_owned()),
        Just("</ul>".to_owned()),
        Just("<li>".to_owned()),
        Just("<h2>".to_owned()),
        Just("</h2>".to_owned()),
        Just("<a href=\"https://x.org\">".to_owned()),
        Just("<a href=\"javascript:alert(1)\">".to_owned()),
        Just("<a href=\"https://matrix.to/#/@alice:example.org\">".to_owned()),
        Just("<a href=\"https://matrix.to/#/@slack_u1:example.org\">".to_owned()),
        Just("<a href=\"https://matrix.to/#/!r:example.org\">".to_owned()),
        Just("</a>".to_owned()),
        Just("<img data-mx-emoticon alt=\":x:\" src=\"mxc://a/b\">".to_owned()),
        Just("<img src=\"https://i.org/p.png\" onerror=\"x\">".to_owned()),
        Just("<img alt=\"pic\" src=\"mxc://a/c\">".to_owned()),
        Just("<span data-mx-spoiler>".to_owned()),
        Just("</span>".to_owned()),
        Just("<mx-reply>".to_owned()),
        Just("</mx-reply>".to_owned()),
        Just("<script>".to_owned()),
        Just("<style>".to_owned()),
        Just("<table><tr><td>".to_owned()),
        Just("&nbsp;".to_owned()),
        Just("&amp;".to_owned()),
        Just("&#x3C;script&#x3E;".to_owned()),
        Just("<!-- c -->".to_owned()),
    ];
    prop::collection::vec(piece, 0..24).prop_map(|v| v.concat())
}

/// Rendering then parsing what a parse returned gives it back.
fn assert_stable(once: &RichText) -> Result<(), TestCaseError> {
    let r = render(once, &ctx());
    let html = r.formatted_body.as_deref().unwrap_or("");
    assert_safe(html);
    let twice = parse(&r.body, r.formatted_body.as_deref(), &ctx());
    prop_assert_eq!(&twice, once, "body: {:?} html: {}", r.body, html);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn render_then_parse_round_trips(body in richtext()) {
        let r = render(&body, &ctx());
        let html = r.formatted_body.as_deref().unwrap_or("");
        assert_safe(html);
        let back = parse(&r.body, r.formatted_body.as_deref(), &ctx());
        prop_assert_eq!(back, matrix_form(&body), "body: {:?} html: {}", r.body, html);
        prop_assert_eq!(r.body, body.to_plain());
    }

    #[test]
    fn htmlish_parses_stably(s in htmlish()) {
        let once = matrix_form(&parse("fallback", Some(&s), &ctx()));
        assert_stable(&once)?;
    }

    #[test]
    fn arbitrary_strings_never_panic(s in any::<String>()) {
        let as_html = matrix_form(&parse(&s, Some(&s), &ctx()));
        assert_stable(&as_html)?;
        let _ = parse(&s, None, &ctx());
        let _ = MatrixDialect.parse(&s);
    }

    #[test]
    fn plain_bodies_read_back(paras in prop::collection::vec("[a-z *_#>@]{1,10}(\n[a-z *_#>]{1,10}){0,2}", 1..4)) {
        let body = paras.join("\n\n");
        let once = plain(&body);
        assert_stable(&once)?;
    }
}
