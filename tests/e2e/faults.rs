//! Faults with the real daemon process and all three platforms (the Slack
//! and Graph simulators and a real Synapse, see `three.rs`): a SIGKILLed
//! daemon, Socket Mode disconnect storms, Teams change notifications lost
//! or late, Synapse stopped, 429 storms, and a full disk under the store.
//! People post on every platform; at the end each message must be on each
//! of the two other platforms exactly once, in the order it was sent
//! (per portal and origin), and never echoed back to its own platform.
//!
//! Every test fails (never skips) when Synapse cannot be started.

use crate::matrix::WAIT;
use crate::support::*;
use crate::teams::{BOB, SERVICE};
use crate::three::{Three, ThreeConfig};
use serde_json::json;
use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};
use switchboard_matrix::testing::{HarnessError, MatrixUser};
use switchboard_slack::web::SlackApi;
use switchboard_slack_sim::state::Author;
use switchboard_teams::auth::Secret;
use switchboard_teams::client::{Bearer, GraphClient};
use switchboard_teams_sim::state::Scope;

/// The three platforms, in the order the tallies name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Platform {
    Slack,
    Teams,
    Matrix,
}

use Platform::{Matrix, Slack, Teams};

const PLATFORMS: [Platform; 3] = [Slack, Teams, Matrix];

impl Platform {
    fn letter(self) -> char {
        match self {
            Slack => 's',
            Teams => 't',
            Matrix => 'm',
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The text of message `n` from `origin` in portal `portal`: a token that
/// survives every platform's rendering (`fx-s0-00042`).
fn text(origin: Platform, portal: usize, n: usize) -> String {
    format!("fx-{}{portal}-{n:05}", origin.letter())
}

/// The token in a rendered message (after an author line, inside HTML).
fn token(rendered: &str) -> Option<&str> {
    let start = rendered.find("fx-")?;
    let rest = &rendered[start..];
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .unwrap_or(rest.len());
    Some(&rest[..end])
}

/// The platform a token came from.
fn origin_of(token: &str) -> Option<Platform> {
    match token.as_bytes().get(3) {
        Some(b's') => Some(Slack),
        Some(b't') => Some(Teams),
        Some(b'm') => Some(Matrix),
        _ => None,
    }
}

/// The three platforms of a fault test, and a person on each: alice on
/// Slack, Bob on Teams, alice on Matrix.
struct Fx {
    x: Three,
    portals: usize,
}

impl Drop for Fx {
    fn drop(&mut self) {
        self.x.show_log_if_panicking();
    }
}

/// How many messages each person posts per portal, and how fast.
#[derive(Clone, Copy, Debug)]
struct Burst {
    slack: usize,
    teams: usize,
    matrix: usize,
    /// The pause between two posts of one person in one portal.
    pace: Duration,
}

impl Burst {
    fn count(&self, origin: Platform) -> usize {
        match origin {
            Slack => self.slack,
            Teams => self.teams,
            Matrix => self.matrix,
        }
    }

    fn total(&self, portals: usize) -> usize {
        (self.slack + self.teams + self.matrix) * portals
    }
}

/// What one platform shows in one portal: the tokens the bridge posted
/// there, in platform order.
type Shown = Vec<String>;

/// Counts over every (portal, origin → target) pair.
#[derive(Debug, Default)]
struct Tally {
    sent: usize,
    delivered: usize,
    lost: usize,
    doubled: usize,
    /// Pairs whose arrivals (without duplicates) are not in sending order.
    out_of_order: Vec<String>,
    /// Messages the bridge posted back on their own platform.
    echoed: usize,
    /// Pairs with messages shown more than once, and which.
    doubles: Vec<String>,
}

impl Fx {
    fn start(portals: usize, config: ThreeConfig) -> (Fx, Daemon) {
        let (x, daemon) = Three::start(ThreeConfig { portals, ..config });
        (Fx { x, portals }, daemon)
    }

    fn rt(&self) -> &tokio::runtime::Runtime {
        &self.x.t.slack.rt
    }

    fn setup(&self) -> &Setup {
        self.x.setup()
    }

    /// Starts the daemon and waits only until its HTTP listener answers:
    /// after a restart with a backlog, Teams reports itself connected only
    /// once it has reconciled every channel, which can take longer than
    /// the pause between two kills.
    fn spawn_listening(&self) -> Daemon {
        let mut daemon = self.setup().spawn();
        let deadline = Instant::now() + WAIT;
        while http_get(daemon.listen, "/health").is_none() {
            if let Some(status) = daemon.child.try_wait().expect("try_wait") {
                panic!("daemon exited at start: {status}");
            }
            assert!(Instant::now() < deadline, "daemon not listening in time");
            std::thread::sleep(Duration::from_millis(20));
        }
        daemon
    }

    /// Starts the people posting, one task per portal and platform; each
    /// task's handle gives back how many posts needed a retry.
    fn post_burst(&self, burst: Burst) -> Vec<tokio::task::JoinHandle<usize>> {
        let deadline = Instant::now() + Duration::from_secs(600);
        let mut tasks = Vec::new();
        for portal in 0..self.portals {
            for origin in PLATFORMS {
                let count = burst.count(origin);
                let poster = self.poster(origin, portal);
                tasks.push(self.rt().spawn(async move {
                    let mut retries = 0;
                    for n in 0..count {
                        let text = text(origin, portal, n);
                        loop {
                            match poster.post(&text).await {
                                Ok(()) => break,
                                Err(e) => {
                                    assert!(
                                        Instant::now() < deadline,
                                        "{origin} could not post {text}: {e}"
                                    );
                                    retries += 1;
                                    tokio::time::sleep(Duration::from_millis(200)).await;
                                }
                            }
                        }
                        tokio::time::sleep(burst.pace).await;
                    }
                    retries
                }));
            }
        }
        tasks
    }

    fn poster(&self, origin: Platform, portal: usize) -> Poster {
        match origin {
            Slack => {
                let alice = self.x.t.slack.alice();
                Poster::Slack {
                    api: alice.api,
                    token: alice.token,
                    channel: self.x.t.slack.channels[portal].clone(),
                }
            }
            Teams => {
                let sim = &self.x.t.sim;
                Poster::Teams {
                    graph: GraphClient::with_limits(sim.graph_url(), None).expect("graph client"),
                    token: Secret::new(sim.delegated_token(BOB).expect("Bob's token")),
                    user: self.x.t.user_id(BOB),
                    path: format!(
                        "/teams/{}/channels/{}/messages",
                        self.x.t.team, self.x.t.channels[portal]
                    ),
                }
            }
            Matrix => Poster::Matrix {
                alice: self.x.hs.alice.clone(),
                room: self.x.rooms[portal].clone(),
            },
        }
    }

    /// Waits for every poster; returns the posts that needed a retry.
    fn wait_posted(&self, tasks: Vec<tokio::task::JoinHandle<usize>>) -> usize {
        tasks
            .into_iter()
            .map(|t| self.rt().block_on(t).expect("a poster"))
            .sum()
    }

    /// What the bridge posted in portal `portal` on `platform`, in
    /// platform order.
    fn shown(&self, platform: Platform, portal: usize) -> Shown {
        let texts: Vec<String> = match platform {
            Slack => {
                let room = self.x.t.slack.channels[portal].clone();
                self.x.t.slack.sim.inner().mutate(|st, _| {
                    st.channel(&room)
                        .map(|c| {
                            c.messages
                                .values()
                                .filter(|m| matches!(m.author, Author::Bot { .. }))
                                .map(|m| m.text.clone())
                                .collect()
                        })
                        .unwrap_or_default()
                })
            }
            Teams => {
                let service = self.x.t.user_id(SERVICE);
                let channel = &self.x.t.channels[portal];
                let st = self
                    .x
                    .t
                    .sim
                    .inner()
                    .state
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                st.messages
                    .values()
                    .filter(|m| {
                        matches!(&m.scope, Scope::Channel { channel: c, .. } if c == channel)
                            && m.reply_to.is_none()
                            && m.deleted_ms.is_none()
                            && m.from.as_deref() == Some(service.as_str())
                    })
                    .map(|m| m.content.clone())
                    .collect()
            }
            Matrix => {
                let events = self
                    .rt()
                    .block_on(self.x.hs.alice.all_messages(&self.x.rooms[portal], 100))
                    .expect("read the portal room");
                events
                    .into_iter()
                    .filter(|e| {
                        e["type"] == "m.room.message"
                            && e["sender"] != self.x.hs.alice.user_id.as_str()
                    })
                    .filter_map(|e| e["content"]["body"].as_str().map(str::to_owned))
                    .collect()
            }
        };
        texts
            .iter()
            .filter_map(|t| token(t).map(str::to_owned))
            .collect()
    }

    /// Everything shown, by platform and portal.
    fn shown_all(&self) -> HashMap<(Platform, usize), Shown> {
        let mut all = HashMap::new();
        for platform in PLATFORMS {
            for portal in 0..self.portals {
                all.insert((platform, portal), self.shown(platform, portal));
            }
        }
        all
    }

    /// Waits (up to `limit`) until every message of `burst` shows on both
    /// other platforms, lets stragglers (duplicates) show, and counts.
    fn wait_and_tally(&self, burst: Burst, limit: Duration) -> Tally {
        let deadline = Instant::now() + limit;
        let expected = |target: Platform| -> usize {
            PLATFORMS
                .iter()
                .filter(|o| **o != target)
                .map(|o| burst.count(*o))
                .sum()
        };
        let mut last_report = Instant::now();
        // Reading the Matrix rooms loads Synapse: every 15 s, or every 2 s
        // once the simulators show everything and the outbox is empty.
        let mut matrix: HashMap<usize, Shown> = HashMap::new();
        let mut matrix_read = Instant::now() - Duration::from_secs(60);
        loop {
            let mut all = HashMap::new();
            for platform in [Slack, Teams] {
                for portal in 0..self.portals {
                    all.insert((platform, portal), self.shown(platform, portal));
                }
            }
            let sims_done = all.iter().all(|((target, _), shown)| {
                let distinct: std::collections::HashSet<&String> = shown.iter().collect();
                distinct.len() >= expected(*target)
            });
            // The outbox empty: nothing more is on its way to Matrix.
            let idle = metric(self.setup().listen, "switchboard_outbox_depth") == Some(0.0);
            let due = if sims_done && idle { 2 } else { 15 };
            if matrix_read.elapsed() > Duration::from_secs(due) {
                for portal in 0..self.portals {
                    matrix.insert(portal, self.shown(Matrix, portal));
                }
                matrix_read = Instant::now();
            }
            for (portal, shown) in &matrix {
                all.insert((Matrix, *portal), shown.clone());
            }
            let missing: usize = all
                .iter()
                .map(|((target, _), shown)| {
                    let distinct: std::collections::HashSet<&String> = shown.iter().collect();
                    expected(*target).saturating_sub(distinct.len())
                })
                .sum();
            if missing == 0 {
                break;
            }
            if last_report.elapsed() > Duration::from_secs(10) {
                eprintln!(
                    "still missing {missing} deliveries (Matrix as of {:?} ago)",
                    matrix_read.elapsed()
                );
                last_report = Instant::now();
            }
            assert!(
                Instant::now() < deadline,
                "{missing} deliveries still missing after {limit:?}: {:?}",
                tally(burst, self.portals, &all)
            );
            std::thread::sleep(Duration::from_secs(1));
        }
        std::thread::sleep(Duration::from_secs(2));
        tally(burst, self.portals, &self.shown_all())
    }
}

/// Compares what was shown with what was sent.
fn tally(burst: Burst, portals: usize, all: &HashMap<(Platform, usize), Shown>) -> Tally {
    let mut t = Tally {
        sent: burst.total(portals),
        ..Tally::default()
    };
    for ((target, portal), shown) in all {
        for origin in PLATFORMS {
            let arrived: Vec<&String> = shown
                .iter()
                .filter(|s| origin_of(s) == Some(origin))
                .collect();
            if origin == *target {
                t.echoed += arrived.len();
                continue;
            }
            let sent: Vec<String> = (0..burst.count(origin))
                .map(|n| text(origin, *portal, n))
                .collect();
            let mut counts: HashMap<&str, usize> = HashMap::new();
            for a in &arrived {
                *counts.entry(a.as_str()).or_default() += 1;
            }
            t.delivered += arrived.len();
            t.lost += sent
                .iter()
                .filter(|s| !counts.contains_key(s.as_str()))
                .count();
            t.doubled += counts.values().map(|n| n - 1).sum::<usize>();
            let mut twice: Vec<String> = counts
                .iter()
                .filter(|(_, n)| **n > 1)
                .map(|(token, n)| format!("{token}×{n}"))
                .collect();
            if !twice.is_empty() {
                twice.sort();
                t.doubles
                    .push(format!("portal {portal}: {origin} → {target}: {twice:?}"));
            }
            let mut firsts: Vec<&str> = Vec::new();
            let mut seen = std::collections::HashSet::new();
            for a in &arrived {
                if seen.insert(a.as_str()) {
                    firsts.push(a.as_str());
                }
            }
            let in_order = firsts
                .iter()
                .zip(sent.iter())
                .all(|(a, s)| *a == s.as_str());
            if !in_order {
                let at = firsts
                    .iter()
                    .zip(sent.iter())
                    .position(|(a, s)| *a != s.as_str())
                    .unwrap_or(0);
                let end = (at + 6).min(firsts.len());
                t.out_of_order.push(format!(
                    "portal {portal}: {origin} → {target}: from position {at} {:?}",
                    &firsts[at.saturating_sub(2)..end]
                ));
            }
        }
    }
    t
}

/// Asserts a clean tally (and no dead letter in the daemon's log) and
/// prints it.
fn assert_exactly_once(fx: &Fx, what: &str, t: &Tally) {
    assert!(
        !fx.setup().log().contains("dead-lettered"),
        "{what}: nothing dead-lettered"
    );
    eprintln!(
        "{what}: {} sent, {} deliveries (2 per message expected), {} lost, {} doubled {:?}, {} echoed, out of order: {:?}",
        t.sent, t.delivered, t.lost, t.doubled, t.doubles, t.echoed, t.out_of_order
    );
    assert_eq!((t.lost, t.doubled, t.echoed), (0, 0, 0), "{what}: {t:?}");
    assert!(t.out_of_order.is_empty(), "{what}: {t:?}");
    assert_eq!(t.delivered, 2 * t.sent, "{what}: {t:?}");
}

/// A person posting in one portal's channel on one platform.
enum Poster {
    Slack {
        api: SlackApi,
        token: switchboard_slack::web::Token,
        channel: String,
    },
    Teams {
        graph: GraphClient,
        token: Secret,
        user: String,
        path: String,
    },
    Matrix {
        alice: MatrixUser,
        room: String,
    },
}

impl Poster {
    /// Posts `text`. An error means it was not posted (the simulators
    /// inject no lost answers here; Synapse refused the connection), so
    /// the caller may post again.
    async fn post(&self, text: &str) -> Result<(), String> {
        match self {
            Poster::Slack {
                api,
                token,
                channel,
            } => api
                .call(
                    "chat.postMessage",
                    token,
                    json!({ "channel": channel, "text": text }),
                    None,
                )
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Poster::Teams {
                graph,
                token,
                user,
                path,
            } => graph
                .post_json(
                    path,
                    Bearer::User(token, user),
                    &json!({ "body": { "contentType": "html", "content": format!("<p>{text}</p>") } }),
                )
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Poster::Matrix { alice, room } => match alice.send_text(room, text).await {
                Ok(_) => Ok(()),
                Err(e @ HarnessError::Http { .. }) => Err(e.to_string()),
                Err(e) => panic!("alice could not send {text}: {e}"),
            },
        }
    }
}

/// The mixed burst of [`three_platforms_survive_sigkill_during_a_mixed_burst`]
/// by default: per portal 250 from each platform, in four portals: 3,000
/// messages (1,000 per platform), 6,000 deliveries.
const MIXED: Burst = Burst {
    slack: 250,
    teams: 250,
    matrix: 250,
    pace: Duration::from_millis(10),
};
/// With `SWITCHBOARD_E2E_FULL_BURST=1`: per portal 1,125 from Slack, 1,125
/// from Teams and 250 from Matrix, in four portals: 10,000 messages, 20,000
/// deliveries, 9,000 of them new events in Synapse.
const MIXED_FULL: Burst = Burst {
    slack: 1125,
    teams: 1125,
    matrix: 250,
    pace: Duration::from_millis(10),
};
const MIXED_PORTALS: usize = 4;
/// SIGKILLs, one every [`KILL_EVERY`] from the start of the burst.
const KILLS: usize = 6;
const KILL_EVERY: Duration = Duration::from_secs(10);

/// A mixed burst across four portals, posted by alice on Slack, Bob on
/// Teams and alice on Matrix, while the daemon is SIGKILLed every 10 s, six
/// times, each time with work in its outbox, and restarted at once: every
/// message shows exactly once on each of the two other platforms, in order
/// per portal and origin.
///
/// The default burst is 3,000 messages (1,000 per platform, [`MIXED`]).
/// Synapse bounds the pace: every Slack and Teams message is a new event
/// there, and this two-core machine (a debug build of the daemon, the
/// simulators and Synapse on SQLite sharing it) persisted about 30 of them
/// a second, so the 10,000-message burst ([`MIXED_FULL`],
/// `SWITCHBOARD_E2E_FULL_BURST=1`) takes about ten minutes; run it on its
/// own, with a nextest slow-timeout above that.
#[test]
fn three_platforms_survive_sigkill_during_a_mixed_burst() {
    let started = Instant::now();
    let burst = match std::env::var("SWITCHBOARD_E2E_FULL_BURST").as_deref() {
        Ok("1") => MIXED_FULL,
        _ => MIXED,
    };
    let (fx, mut daemon) = Fx::start(MIXED_PORTALS, ThreeConfig::default());
    let posting = Instant::now();
    let tasks = fx.post_burst(burst);
    let mut depths = Vec::new();
    for kill in 1..=KILLS {
        std::thread::sleep(KILL_EVERY);
        let depth = metric(daemon.listen, "switchboard_outbox_depth").unwrap_or(0.0);
        daemon.kill9();
        eprintln!(
            "SIGKILL {kill} at {:?}, {depth} ops in the outbox",
            posting.elapsed()
        );
        depths.push(depth);
        daemon = fx.spawn_listening();
    }
    let retries = fx.wait_posted(tasks);
    eprintln!(
        "{} messages posted in {:?} ({retries} posts retried)",
        burst.total(MIXED_PORTALS),
        posting.elapsed()
    );
    assert!(
        depths.iter().all(|d| *d > 0.0),
        "every SIGKILL came with work in the outbox: {depths:?}"
    );
    let t = fx.wait_and_tally(burst, Duration::from_secs(1200));
    eprintln!(
        "all shown {:?} after the burst started, {KILLS} SIGKILLs",
        posting.elapsed()
    );
    assert_exactly_once(&fx, "SIGKILLs during a mixed burst", &t);
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(WAIT), Some(0));
    eprintln!("done in {:?}", started.elapsed());
}

/// Socket Mode under a storm: while people post on all three platforms,
/// Slack sends a disconnect frame every 300 ms (each reason it sends, in
/// turn) and every eighth time refuses new connections for 500 ms, so
/// events wait in Slack's offline queue or are redelivered after a missed
/// ack (the ack deadline is 500 ms). The existing Slack test does this for
/// Slack → memory; here all six directions are counted.
#[test]
fn a_socket_mode_disconnect_storm_loses_and_doubles_nothing() {
    const BURST: Burst = Burst {
        slack: 150,
        teams: 50,
        matrix: 50,
        pace: Duration::from_millis(20),
    };
    let (fx, mut daemon) = Fx::start(
        2,
        ThreeConfig {
            slack: switchboard_slack_sim::SimConfig {
                ack_timeout: Duration::from_millis(500),
                ..switchboard_slack_sim::SimConfig::default()
            },
            ..ThreeConfig::default()
        },
    );
    let posting = Instant::now();
    let tasks = fx.post_burst(BURST);
    let reasons = ["warning", "refresh_requested", "too_many_websockets"];
    let (mut frames, mut refusals) = (0, 0);
    for round in 0..200 {
        if tasks.iter().all(|t| t.is_finished()) {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
        let sim = &fx.x.t.slack.sim;
        let _runtime = fx.rt().enter();
        if round % 8 == 7 {
            sim.refuse_connections_for(Duration::from_millis(500));
            refusals += 1;
        }
        frames += sim.disconnect_sockets(reasons[round % 3]);
    }
    let retries = fx.wait_posted(tasks);
    let c = fx.x.t.slack.sim.counters();
    eprintln!(
        "{} messages posted in {:?} ({retries} retried); {frames} disconnect frames, {refusals} refusal windows; \
         Slack: {} sockets opened, {} refused, {} events redelivered, {} dropped",
        BURST.total(2),
        posting.elapsed(),
        c.sockets_opened,
        c.sockets_refused,
        c.events_redelivered,
        c.events_dropped
    );
    assert!(frames >= 10, "a storm: {frames} disconnect frames");
    let t = fx.wait_and_tally(BURST, Duration::from_secs(180));
    assert_exactly_once(&fx, "Socket Mode disconnect storm", &t);
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(WAIT), Some(0));
}

/// Teams change notifications through the daemon's listener while the
/// Graph simulator silently drops 30 % of them, sends 10 % twice and
/// delays every one it sends by 1.5 s; reconciliation (delta, every 5 s
/// here) brings what was never notified. People post on all three
/// platforms, most on Teams.
#[test]
fn teams_notifications_dropped_and_delayed_are_caught_up() {
    const BURST: Burst = Burst {
        slack: 30,
        teams: 150,
        matrix: 30,
        pace: Duration::from_millis(30),
    };
    let (fx, mut daemon) = Fx::start(
        2,
        ThreeConfig {
            notifications: Some("5s".into()),
            ..ThreeConfig::default()
        },
    );
    // One per channel, and one for the service account's chats (commands
    // and direct messages).
    let subs = fx.x.t.sim.subscriptions();
    let channel_subs = subs
        .iter()
        .filter(|s| {
            !s["resource"]
                .as_str()
                .is_some_and(|r| r.ends_with("/chats/getAllMessages"))
        })
        .count();
    assert_eq!(channel_subs, 2, "one subscription per channel: {subs:?}");
    assert_eq!(subs.len(), 3, "and one for the chats: {subs:?}");
    fx.x.t
        .sim
        .set_faults(switchboard_teams_sim::limits::FaultConfig {
            drop_rate: 0.3,
            duplicate_rate: 0.1,
            notification_delay_ms: 1500,
            ..Default::default()
        });
    let posting = Instant::now();
    let tasks = fx.post_burst(BURST);
    let retries = fx.wait_posted(tasks);
    eprintln!(
        "{} messages posted in {:?} ({retries} retried)",
        BURST.total(2),
        posting.elapsed()
    );
    let t = fx.wait_and_tally(BURST, Duration::from_secs(180));
    let c = fx.x.t.sim.counters();
    eprintln!(
        "Teams notifications: {} attempts, {} delivered, {} dropped on purpose, {} sent twice; all shown after {:?}",
        c.notification_attempts,
        c.notifications_delivered,
        c.notifications_fault_dropped,
        c.notifications_duplicated,
        posting.elapsed()
    );
    assert!(
        c.notifications_fault_dropped > 0 && c.notifications_delivered > 0,
        "some notifications dropped, some delivered: {c:?}"
    );
    assert_exactly_once(&fx, "Teams notifications dropped and delayed", &t);
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(WAIT), Some(0));
}

impl Fx {
    /// Alice posts messages `range` from Matrix in portal `portal`, one
    /// after the other.
    fn post_matrix(&self, portal: usize, range: std::ops::Range<usize>) {
        let poster = self.poster(Matrix, portal);
        for n in range {
            let text = text(Matrix, portal, n);
            let deadline = Instant::now() + WAIT;
            while let Err(e) = self.rt().block_on(poster.post(&text)) {
                assert!(
                    Instant::now() < deadline,
                    "alice could not send {text}: {e}"
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }

    /// How many messages from `origin` show on `target` in portal 0.
    fn shown_from(&self, origin: Platform, target: Platform) -> usize {
        self.shown(target, 0)
            .iter()
            .filter(|t| origin_of(t) == Some(origin))
            .count()
    }
}

/// Synapse really stopped (the process ends; SIGTERM, as `scripts/synapse.sh
/// stop` does) for 30 s while Slack and Teams people keep posting, then
/// started again on the same port and database. Alice sends 20 messages
/// from Matrix just before the stop (Synapse may still have them queued for
/// the application service) and 20 after the restart. Slack ↔ Teams goes on
/// meanwhile; every message reaches Matrix after the restart, and each
/// arrives exactly once everywhere, in order. The relay's retries (up to 50
/// attempts, backoff up to 2 s) outlast the outage.
#[test]
fn synapse_stopped_for_30_s_loses_nothing() {
    const OUTAGE: Duration = Duration::from_secs(30);
    const FROM_MATRIX: usize = 20;
    const BURST: Burst = Burst {
        slack: 100,
        teams: 100,
        matrix: 0,
        pace: Duration::from_millis(400),
    };
    let (mut fx, mut daemon) = Fx::start(
        1,
        ThreeConfig {
            relay: "initial_backoff = \"100ms\"\nmax_backoff = \"2s\"\nmax_attempts = 50\ndrain_grace = \"10s\"\n"
                .into(),
            ..ThreeConfig::default()
        },
    );
    let started = Instant::now();
    let tasks = fx.post_burst(BURST);
    std::thread::sleep(Duration::from_secs(3));
    fx.post_matrix(0, 0..FROM_MATRIX);
    let stopping = Instant::now();
    fx.x.hs.synapse.stop().expect("Synapse stops");
    eprintln!(
        "Synapse stopped in {:?}, {:?} after the burst started",
        stopping.elapsed(),
        started.elapsed()
    );
    let stopped = Instant::now();
    let slack_to_teams = fx.shown_from(Slack, Teams);
    let teams_to_slack = fx.shown_from(Teams, Slack);
    let outbox = metric(daemon.listen, "switchboard_outbox_depth");
    std::thread::sleep(OUTAGE.saturating_sub(Duration::from_secs(1)));
    // Slack and Teams went on without Matrix.
    let during = (
        fx.shown_from(Slack, Teams) - slack_to_teams,
        fx.shown_from(Teams, Slack) - teams_to_slack,
    );
    std::thread::sleep(OUTAGE.saturating_sub(stopped.elapsed()));
    let restarting = Instant::now();
    fx.x.hs.synapse.restart().expect("Synapse starts again");
    eprintln!(
        "Synapse down for {:?} (started again in {:?}); Slack → Teams {} and Teams → Slack {} meanwhile; outbox at the stop {outbox:?}",
        stopped.elapsed(),
        restarting.elapsed(),
        during.0,
        during.1
    );
    assert!(
        during.0 > 0 && during.1 > 0,
        "Slack ↔ Teams went on while Synapse was down: {during:?}"
    );
    assert!(
        fx.setup()
            .log()
            .lines()
            .any(|l| l.contains("Delivery failed, will retry.")
                && l.contains("bridge=matrix:example")),
        "deliveries to Matrix failed while Synapse was down"
    );
    fx.post_matrix(0, FROM_MATRIX..2 * FROM_MATRIX);
    let retries = fx.wait_posted(tasks);
    let expected = Burst {
        matrix: 2 * FROM_MATRIX,
        ..BURST
    };
    let t = fx.wait_and_tally(expected, Duration::from_secs(180));
    eprintln!(
        "all shown {:?} after the restart ({retries} posts retried)",
        restarting.elapsed()
    );
    assert_exactly_once(&fx, "Synapse stopped for 30 s", &t);
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(WAIT), Some(0));
}

/// 429 storms: for 15 s of a three-platform burst, the Slack simulator
/// enforces Slack's documented limits (about one message per second per
/// channel, per-method tiers) and the Graph simulator the 2021 Teams
/// limits (two channel posts a second per account, a few reads), with the
/// connectors' own limiters off, so both answer 429 with Retry-After to the
/// daemon (and to the people posting, who post again). Then the limits go
/// off and everything drains: exactly once, in order.
///
/// Synapse is not part of the storm: it cannot be made to answer 429 to
/// the application service. The registration must say `rate_limited:
/// false` (the daemon refuses to start on one that says true), and Synapse
/// exempts the application service and the ghosts it asserts from its
/// `rc_message` limits.
#[test]
fn a_429_storm_on_each_platform_loses_and_doubles_nothing() {
    const STORM: Duration = Duration::from_secs(15);
    const BURST: Burst = Burst {
        slack: 40,
        teams: 40,
        matrix: 40,
        pace: Duration::from_millis(100),
    };
    let (fx, mut daemon) = Fx::start(2, ThreeConfig::default());
    fx.x.t
        .slack
        .sim
        .set_rate_limit_mode(switchboard_slack_sim::ratelimit::Mode::Strict);
    fx.x.t
        .sim
        .set_rate_limit_mode(switchboard_teams_sim::limits::Mode::Strict);
    let posting = Instant::now();
    let tasks = fx.post_burst(BURST);
    std::thread::sleep(STORM);
    fx.x.t
        .slack
        .sim
        .set_rate_limit_mode(switchboard_slack_sim::ratelimit::Mode::Off);
    fx.x.t
        .sim
        .set_rate_limit_mode(switchboard_teams_sim::limits::Mode::Off);
    let retries = fx.wait_posted(tasks);
    let (slack_429, teams_429) = (
        fx.x.t.slack.sim.counters().ratelimited,
        fx.x.t.sim.counters().throttled,
    );
    // Deliveries the daemon retried after a 429, by target.
    let limited = |bridge: &str| -> f64 {
        let (_, body) = http_get(daemon.listen, "/metrics").expect("metrics");
        body.lines()
            .filter(|l| {
                l.starts_with("switchboard_retried_total")
                    && l.contains(&format!("bridge=\"{bridge}\""))
                    && l.contains("error=\"rate_limited\"")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let (slack_retried, teams_retried) = (limited("slack:sim"), limited("teams:contoso"));
    eprintln!(
        "{} messages posted in {:?} ({retries} posts retried); 429s: Slack {slack_429}, Teams {teams_429}; \
         deliveries retried after a 429: to Slack {slack_retried}, to Teams {teams_retried}",
        BURST.total(2),
        posting.elapsed()
    );
    assert!(
        slack_retried > 0.0 && teams_retried > 0.0,
        "both simulators answered 429 to the daemon's deliveries: Slack {slack_retried}, Teams {teams_retried}"
    );
    let t = fx.wait_and_tally(BURST, Duration::from_secs(180));
    assert_exactly_once(&fx, "429 storms", &t);
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(WAIT), Some(0));
}

/// A small file system for the store: a 64 MiB tmpfs mounted at `dir`
/// (unmounted lazily when dropped, so a failed test leaves nothing
/// mounted), or, where mounting is not permitted, just `dir` on the
/// scratch directory's own disk.
struct SmallDisk {
    dir: std::path::PathBuf,
    mounted: bool,
}

impl SmallDisk {
    fn new(dir: std::path::PathBuf) -> SmallDisk {
        std::fs::create_dir_all(&dir).expect("mount point");
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64m", "tmpfs"])
            .arg(&dir)
            .output()
            .expect("run mount");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let mounted = out.status.success();
        if !mounted {
            assert!(
                stderr.contains("permission denied")
                    || stderr.contains("must be superuser")
                    || stderr.contains("only root"),
                "mount failed otherwise: {stderr}"
            );
            eprintln!(
                "no tmpfs (mount: {}); using the scratch disk",
                stderr.trim()
            );
        }
        SmallDisk { dir, mounted }
    }

    fn free(&self) -> u64 {
        let st = rustix::fs::statvfs(&self.dir).expect("statvfs");
        st.f_bavail * st.f_frsize
    }

    /// `store.min_free_bytes` for this disk: 16 MiB on the tmpfs; on a
    /// shared disk, 256 MiB below what is free now (whatever else writes
    /// there meanwhile, the store's own writes stay far from it).
    fn min_free(&self) -> u64 {
        if self.mounted {
            16 * 1024 * 1024
        } else {
            self.free().saturating_sub(256 * 1024 * 1024)
        }
    }

    /// Allocates a filler file (really allocated, not sparse) until the
    /// free space is below `min_free` by half of it, at most by 128 MiB:
    /// 8 MiB free on the tmpfs, about 384 MiB of filler on a shared disk.
    fn fill(&self, min_free: u64) -> std::path::PathBuf {
        let path = self.dir.join("filler");
        let file = std::fs::File::create(&path).expect("filler");
        let below = (min_free / 2).min(128 * 1024 * 1024);
        let size = self.free().saturating_sub(min_free - below);
        rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, size)
            .expect("allocate the filler");
        file.sync_all().expect("sync the filler");
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        if self.mounted {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.dir)
                .status();
        }
    }
}

/// The store on a genuinely small file system (a 64 MiB tmpfs; see
/// [`SmallDisk`] for the fallback) with `store.min_free_bytes` at 16 MiB.
/// A filler file leaves 8 MiB free, then alice posts 20 messages on Slack
/// and Bob 20 on Teams: the daemon refuses them with a clear ERROR in its
/// log, relays nothing new and acknowledges nothing, for 15 s (longer than
/// Slack keeps redelivering an unacknowledged event). The filler deleted,
/// Slack has given up redelivering by then: the connector's catch-up from
/// its stored cursor, and Teams' reconciliation, bring every message,
/// exactly once, in order. `/ready` stays 200 (readiness is about the
/// bridges) and no metric counts refused intake: the ERROR line is what
/// tells. Where mounting is not permitted (not root), the store stays on
/// the scratch disk with `min_free_bytes` 256 MiB below its free space and
/// a filler of about 384 MiB.
#[test]
fn a_full_disk_refuses_intake_clearly_and_recovers() {
    const BURST: Burst = Burst {
        slack: 20,
        teams: 20,
        matrix: 0,
        pace: Duration::from_millis(50),
    };
    const FULL_FOR: Duration = Duration::from_secs(15);
    let scratch = tempfile::tempdir().expect("mount point's parent");
    let disk = SmallDisk::new(scratch.path().join("disk"));
    let min_free = disk.min_free();
    let store = disk.dir.join("store");
    let (fx, mut daemon) = Fx::start(
        1,
        ThreeConfig {
            store_path: Some(store.display().to_string()),
            store_extra: format!("min_free_bytes = {min_free}\n"),
            ..ThreeConfig::default()
        },
    );
    // It works before the disk fills.
    let warm = Burst {
        slack: 1,
        teams: 1,
        matrix: 1,
        pace: Duration::ZERO,
    };
    let tasks = fx.post_burst(warm);
    fx.wait_posted(tasks);
    let t = fx.wait_and_tally(warm, Duration::from_secs(60));
    assert_exactly_once(&fx, "before the disk filled", &t);

    let filler = disk.fill(min_free);
    eprintln!(
        "filled: {} MiB free, minimum {} MiB (tmpfs: {})",
        disk.free() / (1024 * 1024),
        min_free / (1024 * 1024),
        disk.mounted
    );
    // The guard trusts one reading for a second.
    std::thread::sleep(Duration::from_millis(1200));
    let full = Instant::now();
    let burst = Burst {
        slack: BURST.slack + 1,
        teams: BURST.teams + 1,
        matrix: 1,
        ..BURST
    };
    let tasks = {
        // Messages 1.. (message 0 was the warm-up).
        let mut tasks = Vec::new();
        for origin in [Slack, Teams] {
            let poster = fx.poster(origin, 0);
            tasks.push(fx.rt().spawn(async move {
                for n in 1..=20 {
                    poster.post(&text(origin, 0, n)).await.expect("posted");
                    tokio::time::sleep(BURST.pace).await;
                }
                0
            }));
        }
        tasks
    };
    fx.wait_posted(tasks);
    let refusal = "Refusing new events until disk space is freed; platforms will redeliver them.";
    wait_for("the refusal in the log", WAIT, || {
        fx.setup().log().contains(refusal)
    });
    let log = fx.setup().log();
    let line = log
        .lines()
        .find(|l| l.contains(refusal))
        .expect("the refusal line");
    assert!(line.contains("ERROR"), "{line}");
    assert!(
        line.contains(&format!(
            "below the minimum of {} MiB",
            min_free / (1024 * 1024)
        )),
        "the reason names the minimum: {line}"
    );
    let ready = http_get(daemon.listen, "/ready").map(|(code, _)| code);
    std::thread::sleep(FULL_FOR.saturating_sub(full.elapsed()));
    // Nothing new relayed while the disk was full.
    let shown: usize = [Slack, Teams, Matrix]
        .iter()
        .map(|p| fx.shown(*p, 0).len())
        .sum();
    assert_eq!(shown, 6, "only the warm-up relayed while the disk was full");
    let c = fx.x.t.slack.sim.counters();
    eprintln!(
        "{:?} with the disk full: /ready {ready:?}; Slack redelivered {} events and dropped {}",
        full.elapsed(),
        c.events_redelivered,
        c.events_dropped
    );
    assert!(c.events_dropped > 0, "Slack gave up redelivering: {c:?}");

    std::fs::remove_file(&filler).expect("delete the filler");
    let freed = Instant::now();
    let t = fx.wait_and_tally(burst, Duration::from_secs(120));
    eprintln!("all shown {:?} after the filler went", freed.elapsed());
    assert_exactly_once(&fx, "a full disk", &t);
    assert!(
        fx.setup()
            .log()
            .contains("Disk space is back; accepting events again."),
        "the recovery is logged"
    );
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(WAIT), Some(0));
    drop(fx);
    drop(disk);
}
