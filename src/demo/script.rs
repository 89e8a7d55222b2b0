//! The scripted conversation: who does what on which platform, what every
//! other platform must then show, how long that took, and the final check
//! that the platforms hold the same conversation.

use super::sides::{Side, Sides};
use super::view::{Shown, count, find, print_columns, strip_html};
use anyhow::{Context, bail};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How long one step may take to show everywhere.
pub const STEP_WAIT: Duration = Duration::from_secs(30);

/// How often the views are read while waiting.
const POLL: Duration = Duration::from_millis(25);

/// A 1×1 PNG: the file of the script.
const CHART_PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x04, 0x00, 0x00, 0x00, 0xb5, 0x1c, 0x0c,
    0x02, 0x00, 0x00, 0x00, 0x0b, 0x49, 0x44, 0x41, 0x54, 0x78, 0xda, 0x63, 0x64, 0x60, 0x00, 0x00,
    0x00, 0x06, 0x00, 0x02, 0x30, 0x81, 0xd0, 0x2f, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44,
    0xae, 0x42, 0x60, 0x82,
];

/// What a person does. Texts are in the platform's own dialect: Slack
/// mrkdwn, Teams HTML, Matrix HTML.
#[derive(Debug, Clone)]
enum Act {
    /// Posts a message.
    Say(&'static str),
    /// Teams: posts a message mentioning a colleague (`<at id="0">`).
    SayMentioningColleague(&'static str, &'static str),
    /// Matrix: posts a message starting with a mention (a pill) of whoever
    /// wrote the message saying `key` (a person from another platform).
    SayMentioningAuthorOf(&'static str, &'static str),
    /// Replies in the thread of the message saying `key`.
    Reply(&'static str, &'static str),
    /// Edits their message saying `key`.
    Edit(&'static str, &'static str),
    /// Deletes their message saying `key`.
    Delete(&'static str),
    /// Reacts to the message saying `key`.
    React(&'static str, &'static str),
    /// Shares a file with a comment.
    File(&'static str, &'static str),
    /// Starts a call (a Slack huddle).
    CallStart,
    /// Ends it.
    CallEnd,
}

/// What every platform must show after a step.
#[derive(Debug, Clone)]
enum Expect {
    /// A message saying this.
    Has(&'static str),
    /// A reply in a thread saying this.
    Thread(&'static str),
    /// A message saying `new`, none saying `old`.
    Edited {
        new: &'static str,
        old: &'static str,
    },
    /// No message saying this.
    Gone(&'static str),
    /// The message saying this has a reaction.
    Reacted(&'static str),
    /// A message saying `key` and a message carrying file `name`.
    File {
        key: &'static str,
        name: &'static str,
    },
    /// One call message, ended or not.
    Call { ended: bool },
}

impl Expect {
    fn met(&self, view: &[Shown]) -> bool {
        match self {
            Expect::Has(key) => count(view, key) > 0,
            Expect::Thread(key) => find(view, key).is_some_and(|m| m.thread),
            Expect::Edited { new, old } => count(view, new) > 0 && count(view, old) == 0,
            Expect::Gone(key) => count(view, key) == 0,
            Expect::Reacted(key) => find(view, key).is_some_and(|m| !m.reactions.is_empty()),
            Expect::File { key, name } => {
                count(view, key) > 0 && view.iter().any(|m| m.files.iter().any(|f| f == name))
            }
            Expect::Call { ended } => view
                .iter()
                .find(|m| m.call)
                .is_some_and(|m| !ended || m.plain.contains("ended")),
        }
    }

    /// What a platform's column shows for this step.
    fn cell(&self, view: &[Shown]) -> String {
        let focus = match self {
            Expect::Has(key) | Expect::Thread(key) | Expect::Reacted(key) => find(view, key),
            Expect::Edited { new, .. } => find(view, new),
            Expect::File { name, .. } => view.iter().find(|m| m.files.iter().any(|f| f == name)),
            Expect::Call { .. } => view.iter().find(|m| m.call),
            Expect::Gone(key) => {
                return match find(view, key) {
                    Some(m) => m.line(),
                    None => "(deleted: gone)".to_owned(),
                };
            }
        };
        focus.map_or_else(|| "(not there)".to_owned(), Shown::line)
    }
}

/// One step of the script.
#[derive(Debug, Clone)]
struct Step {
    side: Side,
    /// The person's handle on that side.
    who: &'static str,
    act: Act,
    expect: Expect,
}

const RELEASE_14: &str = "release is at 14:00";
const RELEASE_15: &str = "release is at 15:00";
const TEAMS_READY: &str = "Teams side is ready";

/// The script; the Matrix steps only when Matrix takes part.
fn script(matrix: bool) -> Vec<Step> {
    use Act::*;
    let step = |side, who, act, expect| Step {
        side,
        who,
        act,
        expect,
    };
    let mut steps = vec![
        step(
            Side::Slack,
            "ann",
            Say("Morning all! The *release* is at _14:00_ from branch `release-1.4`."),
            Expect::Has(RELEASE_14),
        ),
        step(
            Side::Teams,
            "bob",
            Say("<p>Morning Ann. The <b>Teams side is ready</b>, <i>tests green</i>.</p>"),
            Expect::Has(TEAMS_READY),
        ),
    ];
    if matrix {
        steps.push(step(
            Side::Matrix,
            "mo",
            Say("Hello from <b>Matrix</b>, watching the <code>release-1.4</code> build."),
            Expect::Has("Hello from Matrix"),
        ));
    }
    steps.extend([
        step(
            Side::Teams,
            "bob",
            Reply(RELEASE_14, "<p>Can we move it to <b>15:00</b>?</p>"),
            Expect::Thread("Can we move it to 15:00?"),
        ),
        step(
            Side::Slack,
            "ann",
            Edit(
                RELEASE_14,
                "Morning all! The *release* is at _15:00_ from branch `release-1.4`.",
            ),
            Expect::Edited {
                new: RELEASE_15,
                old: RELEASE_14,
            },
        ),
        step(
            Side::Teams,
            "bob",
            SayMentioningColleague("dee", "please update the release notes."),
            Expect::Has("please update the release notes"),
        ),
    ]);
    if matrix {
        steps.push(step(
            Side::Matrix,
            "mo",
            SayMentioningAuthorOf(RELEASE_15, "15:00 works for Matrix too."),
            Expect::Has("15:00 works for Matrix too"),
        ));
    }
    steps.extend([
        step(
            Side::Slack,
            "cid",
            Say("oops, wrong channel"),
            Expect::Has("oops, wrong channel"),
        ),
        step(
            Side::Slack,
            "cid",
            Delete("oops, wrong channel"),
            Expect::Gone("oops, wrong channel"),
        ),
        step(
            Side::Slack,
            "cid",
            React(TEAMS_READY, "+1"),
            Expect::Reacted(TEAMS_READY),
        ),
        step(
            Side::Slack,
            "ann",
            File("chart.png", "Release chart attached"),
            Expect::File {
                key: "Release chart attached",
                name: "chart.png",
            },
        ),
        step(Side::Slack, "ann", CallStart, Expect::Call { ended: false }),
        step(Side::Slack, "ann", CallEnd, Expect::Call { ended: true }),
        step(
            Side::Teams,
            "bob",
            Say("<p>See you at <b>three</b>.</p>"),
            Expect::Has("See you at three"),
        ),
    ]);
    steps
}

/// Latencies from an action on one side to its appearance on another.
#[derive(Debug, Default)]
pub struct Latencies(BTreeMap<(Side, Side), Vec<Duration>>);

impl Latencies {
    /// Records that what `from` did showed on `to` after `took`.
    pub fn record(&mut self, from: Side, to: Side, took: Duration) {
        self.0.entry((from, to)).or_default().push(took);
    }

    /// Prints one line per direction: count, median and max.
    pub fn print(&self) {
        for ((from, to), times) in &self.0 {
            let mut sorted = times.clone();
            sorted.sort();
            let median = sorted.get(sorted.len() / 2).copied().unwrap_or_default();
            let max = sorted.last().copied().unwrap_or_default();
            println!(
                "  {from:>6} → {to:<6}  {:>2} relayed   median {:>4} ms   max {:>4} ms",
                sorted.len(),
                median.as_millis(),
                max.as_millis()
            );
        }
        let mut all: Vec<Duration> = self.0.values().flatten().copied().collect();
        all.sort();
        if let (Some(median), Some(max)) = (all.get(all.len() / 2), all.last()) {
            println!(
                "  {:>15}  {:>2} relayed   median {:>4} ms   max {:>4} ms",
                "all",
                all.len(),
                median.as_millis(),
                max.as_millis()
            );
        }
    }
}

/// Waits until `met` holds for the view of each of `targets`, reading the
/// views every few milliseconds; returns how long each took since `since`
/// and the last view of every active side. Fails after `within`, naming the
/// sides that never showed it and what they showed.
pub async fn wait_until(
    sides: &Sides,
    targets: &[Side],
    since: Instant,
    within: Duration,
    what: &str,
    met: impl Fn(Side, &[Shown]) -> bool,
) -> anyhow::Result<(BTreeMap<Side, Duration>, BTreeMap<Side, Vec<Shown>>)> {
    let mut took = BTreeMap::new();
    let mut views = BTreeMap::new();
    loop {
        for side in sides.active() {
            let view = sides
                .view(side)
                .await
                .with_context(|| format!("cannot read what {side} shows"))?;
            if targets.contains(&side) && !took.contains_key(&side) && met(side, &view) {
                took.insert(side, since.elapsed());
            }
            views.insert(side, view);
        }
        if targets.iter().all(|t| took.contains_key(t)) {
            return Ok((took, views));
        }
        if since.elapsed() > within {
            let mut report = String::new();
            for side in targets.iter().filter(|t| !took.contains_key(t)) {
                report.push_str(&format!("\n  {side} shows:"));
                for m in views.get(side).into_iter().flatten() {
                    report.push_str(&format!("\n    {}", m.line()));
                }
            }
            bail!("{what}: not shown within {} s{report}", within.as_secs());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The script's people: `(side, handle)` → display name.
pub fn who_is(sides: &Sides, side: Side, handle: &str) -> String {
    match side {
        Side::Slack => sides.slack.name_of(handle),
        Side::Teams => sides
            .teams
            .person(handle)
            .map(|p| p.name.clone())
            .unwrap_or_else(|_| handle.to_owned()),
        Side::Matrix => sides
            .matrix
            .as_ref()
            .map(|m| m.name.clone())
            .unwrap_or_else(|| handle.to_owned()),
    }
}

/// Plays the script, printing each step's views side by side; then prints
/// the summary and checks that nothing was lost or doubled.
pub async fn play(sides: &Sides) -> anyhow::Result<()> {
    let active = sides.active();
    let steps = script(sides.matrix.is_some());
    let header: Vec<String> = active.iter().map(|s| s.name().to_owned()).collect();
    print_columns(&header, 1);
    println!(
        "  {}",
        "─".repeat(super::view::WIDTH * active.len() + 3 * (active.len() - 1))
    );
    let mut latencies = Latencies::default();
    let mut huddle = None;
    let started = Instant::now();
    for (n, step) in steps.iter().enumerate() {
        let name = who_is(sides, step.side, step.who);
        println!(
            "\n{:>2}. {} · {name} {}",
            n + 1,
            step.side,
            describe(&step.act)
        );
        let since = Instant::now();
        act(sides, step, &mut huddle)
            .await
            .with_context(|| format!("step {} ({} {})", n + 1, step.side, describe(&step.act)))?;
        let targets: Vec<Side> = active.iter().copied().filter(|s| *s != step.side).collect();
        let (took, views) = wait_until(
            sides,
            &active,
            since,
            STEP_WAIT,
            &format!("step {} ({} {})", n + 1, step.side, describe(&step.act)),
            |_, view| step.expect.met(view),
        )
        .await?;
        let cells: Vec<String> = active
            .iter()
            .map(|s| {
                step.expect
                    .cell(views.get(s).map_or(&[][..], Vec::as_slice))
            })
            .collect();
        print_columns(&cells, 3);
        let times: Vec<String> = active
            .iter()
            .map(|s| match took.get(s) {
                _ if *s == step.side => "(here)".to_owned(),
                Some(t) => format!("+{} ms", t.as_millis()),
                None => String::new(),
            })
            .collect();
        print_columns(&times, 1);
        for target in targets {
            if let Some(t) = took.get(&target) {
                latencies.record(step.side, target, *t);
            }
        }
        if matches!(step.act, Act::CallStart) {
            // Slack counts a huddle's length in whole seconds: let it last.
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
    }
    println!(
        "\nThe script took {:.1} s. Latency: from the action to its appearance on each other platform.",
        started.elapsed().as_secs_f64()
    );
    latencies.print();
    verify(sides, &steps).await
}

/// Says what a step does, for the step's title.
fn describe(act: &Act) -> String {
    match act {
        Act::Say(text) => format!("writes: {text}"),
        Act::SayMentioningColleague(who, text) => {
            format!("mentions a Teams colleague (@{who}): {text}")
        }
        Act::SayMentioningAuthorOf(key, text) => {
            format!("mentions the author of “{key}” (a Slack person): {text}")
        }
        Act::Reply(key, text) => format!("replies in the thread of “{key}”: {text}"),
        Act::Edit(key, text) => format!("edits “{key}” to: {text}"),
        Act::Delete(key) => format!("deletes “{key}”"),
        Act::React(key, emoji) => format!("reacts :{emoji}: to “{key}”"),
        Act::File(name, comment) => format!("shares {name}: {comment}"),
        Act::CallStart => "starts a huddle".to_owned(),
        Act::CallEnd => "ends the huddle".to_owned(),
    }
}

/// The id, on `side`, of the message saying `key`.
async fn id_of(sides: &Sides, side: Side, key: &str) -> anyhow::Result<Shown> {
    let view = sides.view(side).await?;
    find(&view, key)
        .cloned()
        .with_context(|| format!("no message saying “{key}” on {side}"))
}

/// Carries out a step as its person.
async fn act(sides: &Sides, step: &Step, huddle: &mut Option<String>) -> anyhow::Result<()> {
    let who = step.who;
    match (step.side, &step.act) {
        (Side::Slack, Act::Say(text)) => sides.slack.post(who, text, None).await.map(|_| ()),
        (Side::Teams, Act::Say(html)) => sides.teams.post(who, html, json!([])).await.map(|_| ()),
        (Side::Matrix, Act::Say(html)) => sides
            .matrix()?
            .send(&strip_html(html), html, None)
            .await
            .map(|_| ()),
        (Side::Teams, Act::SayMentioningColleague(colleague, text)) => {
            let person = sides.teams.person(colleague)?;
            let html = format!("<p><at id=\"0\">{}</at> {text}</p>", person.name);
            let mentions = json!([{
                "id": 0,
                "mentionText": person.name,
                "mentioned": {"user": {"id": person.id, "displayName": person.name,
                                       "userIdentityType": "aadUser"}}
            }]);
            sides.teams.post(who, &html, mentions).await.map(|_| ())
        }
        (Side::Matrix, Act::SayMentioningAuthorOf(key, text)) => {
            let matrix = sides.matrix()?;
            let target = id_of(sides, Side::Matrix, key).await?;
            let name = target.author.clone();
            let html = format!(
                "<a href=\"https://matrix.to/#/{}\">{name}</a>: {text}",
                target.author_id
            );
            matrix
                .send(&format!("{name}: {text}"), &html, None)
                .await
                .map(|_| ())
        }
        (Side::Slack, Act::Reply(key, text)) => {
            let root = id_of(sides, Side::Slack, key).await?;
            sides
                .slack
                .post(who, text, Some(&root.id))
                .await
                .map(|_| ())
        }
        (Side::Teams, Act::Reply(key, html)) => {
            let root = id_of(sides, Side::Teams, key).await?;
            sides.teams.reply(who, &root.id, html).await.map(|_| ())
        }
        (Side::Slack, Act::Edit(key, text)) => {
            let m = id_of(sides, Side::Slack, key).await?;
            sides.slack.edit(who, &m.id, text).await
        }
        (Side::Teams, Act::Edit(key, html)) => {
            let m = id_of(sides, Side::Teams, key).await?;
            sides.teams.edit(who, &m.id, html).await
        }
        (Side::Matrix, Act::Edit(key, html)) => {
            let m = id_of(sides, Side::Matrix, key).await?;
            sides.matrix()?.edit(&m.id, &strip_html(html), html).await
        }
        (Side::Teams, Act::Delete(key)) => {
            let m = id_of(sides, Side::Teams, key).await?;
            sides.teams.delete(who, &m.id).await
        }
        (Side::Matrix, Act::Delete(key)) => {
            let m = id_of(sides, Side::Matrix, key).await?;
            sides.matrix()?.delete(&m.id).await
        }
        (Side::Teams, Act::React(key, emoji)) => {
            let m = id_of(sides, Side::Teams, key).await?;
            sides.teams.react(who, &m.id, emoji).await
        }
        (Side::Matrix, Act::React(key, emoji)) => {
            let m = id_of(sides, Side::Matrix, key).await?;
            sides.matrix()?.react(&m.id, emoji).await
        }
        (Side::Slack, Act::Delete(key)) => {
            let m = id_of(sides, Side::Slack, key).await?;
            sides.slack.delete(who, &m.id).await
        }
        (Side::Slack, Act::React(key, name)) => {
            let m = id_of(sides, Side::Slack, key).await?;
            sides.slack.react(who, &m.id, name).await
        }
        (Side::Slack, Act::File(name, comment)) => {
            sides.slack.upload(who, name, CHART_PNG, comment).await
        }
        (Side::Slack, Act::CallStart) => {
            *huddle = Some(sides.slack.start_huddle(who)?);
            Ok(())
        }
        (Side::Slack, Act::CallEnd) => {
            let id = huddle.take().context("no huddle was started")?;
            sides.slack.end_huddle(&id)
        }
        (side, act) => bail!("the script cannot do {act:?} on {side}"),
    }
}

/// Compares the final views: every message exactly once on every platform,
/// the edit applied, the delete gone, the reaction, the file and the call
/// there. Prints each platform's view and the verdict; fails when anything
/// is missing or doubled.
async fn verify(sides: &Sides, steps: &[Step]) -> anyhow::Result<()> {
    let mut live: Vec<&str> = Vec::new();
    let mut gone: Vec<&str> = Vec::new();
    let mut reacted: Vec<&str> = Vec::new();
    let mut files: Vec<&str> = Vec::new();
    let mut call = false;
    for step in steps {
        match &step.expect {
            Expect::Has(key) | Expect::Thread(key) => live.push(key),
            Expect::Edited { new, old } => {
                live.retain(|k| k != old);
                live.push(new);
                gone.push(old);
            }
            Expect::Gone(key) => {
                live.retain(|k| k != key);
                gone.push(key);
            }
            Expect::Reacted(key) => reacted.push(key),
            Expect::File { key, name } => {
                live.push(key);
                files.push(name);
            }
            Expect::Call { .. } => call = true,
        }
    }
    // Relaying has finished when every step showed everywhere; a short pause
    // lets a late duplicate show too.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut problems = Vec::new();
    println!("\nWhat each platform shows now:");
    for side in sides.active() {
        let view = sides.view(side).await?;
        println!("  {side}:");
        for m in &view {
            println!("    {}", m.line());
        }
        for key in &live {
            match count(&view, key) {
                1 => {}
                0 => problems.push(format!("{side}: missing “{key}”")),
                n => problems.push(format!("{side}: “{key}” shown {n} times")),
            }
        }
        for key in &gone {
            if count(&view, key) > 0 {
                problems.push(format!("{side}: “{key}” should be gone"));
            }
        }
        for key in &reacted {
            if find(&view, key).is_none_or(|m| m.reactions.is_empty()) {
                problems.push(format!("{side}: no reaction on “{key}”"));
            }
        }
        for name in &files {
            let n = view
                .iter()
                .filter(|m| m.files.iter().any(|f| f == name))
                .count();
            if n != 1 {
                problems.push(format!("{side}: file {name} shown {n} times"));
            }
        }
        if call {
            let calls: Vec<&Shown> = view.iter().filter(|m| m.call).collect();
            if calls.len() != 1 {
                problems.push(format!("{side}: {} call messages, not 1", calls.len()));
            } else if !calls[0].plain.contains("ended") {
                problems.push(format!("{side}: the call does not show as ended"));
            }
        }
    }
    let names: Vec<&str> = sides.active().iter().map(|s| s.name()).collect();
    if problems.is_empty() {
        println!(
            "\nNothing lost, nothing doubled: all {} messages are on {} exactly once each, \
             the edit applied, the deleted message gone, the reaction, the file and the call \
             (ended) on every platform.",
            live.len(),
            super::and_list(&names)
        );
        Ok(())
    } else {
        for p in &problems {
            println!("  PROBLEM {p}");
        }
        bail!("{} problems: the platforms differ", problems.len())
    }
}
