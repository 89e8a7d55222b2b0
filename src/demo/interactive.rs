//! `switchboard demo --interactive`: lines typed as `slack> text`,
//! `teams> text` or `matrix> text` are posted as that side's person, and the
//! other sides' views are printed as the line arrives there. `/quit` or the
//! end of input ends it. Standard input is read by tokio (on its blocking
//! pool), so the daemon and the simulators keep running meanwhile.

use super::script::{STEP_WAIT, wait_until, who_is};
use super::sides::{Side, Sides};
use super::view::{Shown, collapse};
use anyhow::Context;
use std::io::{IsTerminal as _, Write as _};
use std::time::Instant;
use tokio::io::{AsyncBufReadExt, BufReader};

/// Each side's person in the interactive part: (side, handle).
const PEOPLE: [(Side, &str); 3] = [
    (Side::Slack, "ann"),
    (Side::Teams, "bob"),
    (Side::Matrix, "mo"),
];

/// Reads lines until `/quit` or the end of input.
pub async fn run(sides: &Sides) -> anyhow::Result<()> {
    let active = sides.active();
    let choices: Vec<String> = PEOPLE
        .iter()
        .filter(|(side, _)| active.contains(side))
        .map(|(side, handle)| {
            format!(
                "{}> as {}",
                side.name().to_lowercase(),
                who_is(sides, *side, handle)
            )
        })
        .collect();
    println!(
        "\nYour turn. Write a line as one of: {}.",
        choices.join(", ")
    );
    println!("/quit (or the end of input) ends the demo.");
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let terminal = std::io::stdin().is_terminal();
    loop {
        if terminal {
            prompt(&active);
        }
        let Some(line) = lines
            .next_line()
            .await
            .context("cannot read standard input")?
        else {
            println!();
            return Ok(());
        };
        let line = line.trim();
        if !terminal {
            // Piped input: show what was read, as if typed.
            println!("> {line}");
        }
        if line.is_empty() {
            continue;
        }
        if line == "/quit" {
            return Ok(());
        }
        let Some((side, text)) = parse(line) else {
            println!("  Start the line with one of: {}", prefixes(&active));
            continue;
        };
        if !active.contains(&side) {
            println!("  {side} is not part of this demo.");
            continue;
        }
        if let Err(e) = relay_line(sides, side, text).await {
            println!("  {e:#}");
        }
    }
}

fn prefixes(active: &[Side]) -> String {
    active
        .iter()
        .map(|s| format!("{}>", s.name().to_lowercase()))
        .collect::<Vec<_>>()
        .join(" ")
}

fn prompt(active: &[Side]) {
    print!("[{}] ", prefixes(active));
    let _ = std::io::stdout().flush();
}

/// `slack> hello` → (Slack, "hello").
fn parse(line: &str) -> Option<(Side, &str)> {
    let (side, text) = line.split_once('>')?;
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    Some((Side::parse(side)?, text))
}

/// HTML-escapes text for Teams and Matrix.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Text without Slack's emphasis marks and extra spaces: what a line
/// looks like on every platform once formatting is set aside.
fn unmarked(text: &str) -> String {
    collapse(&text.replace(['*', '_', '`', '~'], ""))
}

/// How many messages of `view` say `key` (both without marks).
fn count(view: &[Shown], key: &str) -> usize {
    view.iter()
        .filter(|m| unmarked(&m.plain).contains(key))
        .count()
}

/// Posts `text` as `side`'s person and prints each other side's view of it
/// once it shows there.
async fn relay_line(sides: &Sides, side: Side, text: &str) -> anyhow::Result<()> {
    // What every platform shows of it, without markup.
    let key = unmarked(text);
    let active = sides.active();
    let mut before = Vec::new();
    for s in &active {
        before.push((*s, count(&sides.view(*s).await?, &key)));
    }
    let since = Instant::now();
    match side {
        Side::Slack => sides.slack.post("ann", text, None).await.map(|_| ())?,
        Side::Teams => {
            let html = format!("<p>{}</p>", escape(text));
            sides
                .teams
                .post("bob", &html, serde_json::json!([]))
                .await
                .map(|_| ())?
        }
        Side::Matrix => sides
            .matrix()?
            .send(text, &escape(text), None)
            .await
            .map(|_| ())?,
    }
    let (took, views) = wait_until(
        sides,
        &active,
        since,
        STEP_WAIT,
        &format!("“{text}” from {side}"),
        |s, view| {
            let had = before.iter().find(|(b, _)| *b == s).map_or(0, |(_, n)| *n);
            count(view, &key) > had
        },
    )
    .await?;
    for s in active.iter().filter(|s| **s != side) {
        let shown = views
            .get(s)
            .and_then(|v| v.iter().rev().find(|m| unmarked(&m.plain).contains(&key)))
            .map(|m| m.line())
            .unwrap_or_default();
        let ms = took.get(s).map_or(0, |t| t.as_millis());
        println!("  → {:<6} (+{ms} ms)  {shown}", s.name());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_name_their_side() {
        assert_eq!(parse("slack> hello"), Some((Side::Slack, "hello")));
        assert_eq!(parse("Teams>hi there"), Some((Side::Teams, "hi there")));
        assert_eq!(parse("matrix> a > b"), Some((Side::Matrix, "a > b")));
        assert_eq!(parse("irc> hello"), None);
        assert_eq!(parse("hello"), None);
        assert_eq!(parse("slack>   "), None);
    }
}
